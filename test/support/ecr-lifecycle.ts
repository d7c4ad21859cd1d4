// A simulator of Amazon ECR's lifecycle policy evaluation, and of the little of a repository it acts
// on (tags, push times), so a policy can be checked against many builds without an AWS account.
//
// It models the Amazon ECR User Guide as published in 2026:
//   - "Lifecycle policy evaluation rules" (the page "Automate the cleanup of images by using
//     lifecycle policies in Amazon ECR"; the same list in the guide's public source,
//     awsdocs/amazon-ecr-user-guide, doc_source/LifecyclePolicies.md);
//   - "Lifecycle policy properties in Amazon ECR" (lifecycle_policy_parameters);
//   - "Examples of lifecycle policies in Amazon ECR" (lifecycle_policy_examples), whose stated
//     outcomes test/registry-lifecycle.test.ts replays.
// Quoted texts below come from those pages; a few the 2026 pages state as before (countUnit,
// countNumber, the evaluation rules) are quoted from the guide's public source, whose last edition
// there predates tagPatternList. Where the guide is silent, the simulator refuses rather
// than guesses, and says so. Not modelled, and refused as such: the archive storage class
// (`storageClass`, action `transition`, `targetStorageClass`) and the count types
// `sinceImagePulled` and `sinceImageTransitioned`.

const DAY_MS = 24 * 60 * 60 * 1000;

/** One image (manifest) in a repository, as the lifecycle evaluator sees it. */
export interface EcrImage {
  readonly digest: string;
  /** Empty for an untagged image. */
  readonly tags: readonly string[];
  readonly pushedAt: Date;
}

/** An image the policy expires, and the rule that expires it. */
export interface Expiration {
  readonly digest: string;
  readonly rulePriority: number;
}

/** What PutLifecyclePolicy answers a policy its documentation rules out with (InvalidParameterException). */
export class InvalidLifecyclePolicyError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`InvalidParameterException: invalid lifecycle policy: ${problems.join("; ")}`);
    this.name = "InvalidLifecyclePolicyError";
  }
}

type TagStatus = "tagged" | "untagged" | "any";
type CountType = "imageCountMoreThan" | "sinceImagePushed";

interface Rule {
  readonly rulePriority: number;
  readonly tagStatus: TagStatus;
  readonly tagPrefixList?: readonly string[];
  readonly tagPatternList?: readonly string[];
  readonly countType: CountType;
  readonly countNumber: number;
}

const RULE_KEYS = new Set(["rulePriority", "description", "selection", "action"]);
const SELECTION_KEYS = new Set(["tagStatus", "tagPrefixList", "tagPatternList", "countType", "countUnit", "countNumber"]);
const NOT_MODELLED_SELECTION_KEYS = new Set(["storageClass"]);
const NOT_MODELLED_COUNT_TYPES = new Set(["sinceImagePulled", "sinceImageTransitioned"]);

/**
 * Parses and checks a policy text against the documented property rules. Throws
 * {@link InvalidLifecyclePolicyError} listing every problem found.
 */
export function parseLifecyclePolicy(policyText: string): readonly Rule[] {
  const problems: string[] = [];
  let document: unknown;
  try {
    document = JSON.parse(policyText);
  } catch (error) {
    throw new InvalidLifecyclePolicyError([`not JSON (${(error as Error).message})`]);
  }
  if (!isRecord(document) || !Array.isArray(document.rules)) {
    throw new InvalidLifecyclePolicyError(['the policy must be an object with a "rules" list']);
  }
  for (const key of Object.keys(document)) if (key !== "rules") problems.push(`unknown property "${key}"`);
  // "A lifecycle policy contains one or more rules" ("Automate the cleanup of images …").
  if (document.rules.length === 0) problems.push("a policy needs at least one rule");

  const rules: Rule[] = [];
  document.rules.forEach((raw: unknown, index: number) => {
    const rule = parseRule(raw, `rules[${index}]`, problems);
    if (rule !== undefined) rules.push(rule);
  });

  // "you must give them each a unique value for rulePriority" ("Rule priority").
  const priorities = rules.map((r) => r.rulePriority);
  for (const priority of new Set(priorities)) {
    if (priorities.filter((p) => p === priority).length > 1) problems.push(`rulePriority ${priority} is used by more than one rule`);
  }
  // "A rule with a tagStatus value of any must have the highest value for rulePriority and be
  // evaluated last" ("Rule priority") — which also leaves room for only one such rule.
  const highest = Math.max(...priorities);
  for (const rule of rules.filter((r) => r.tagStatus === "any")) {
    if (rule.rulePriority !== highest || rules.filter((r) => r.tagStatus === "any").length > 1) {
      problems.push(`the tagStatus "any" rule (rulePriority ${rule.rulePriority}) must be the only one and have the highest rulePriority (${highest})`);
    }
  }
  // "Only one rule is allowed to select untagged images" ("Lifecycle policy evaluation rules").
  if (rules.filter((r) => r.tagStatus === "untagged").length > 1) problems.push('only one rule may have tagStatus "untagged"');
  // "The set of rules must contain a unique set of tag prefixes" (same list). Stated for prefixes
  // only; the guide says nothing of repeated pattern lists, so those are not checked.
  const prefixSets = rules.filter((r) => r.tagPrefixList !== undefined).map((r) => [...new Set(r.tagPrefixList)].sort().join("\n"));
  if (new Set(prefixSets).size !== prefixSets.length) problems.push("two rules select the same set of tag prefixes");

  if (problems.length > 0) throw new InvalidLifecyclePolicyError(problems);
  return [...rules].sort((a, b) => a.rulePriority - b.rulePriority);
}

function parseRule(raw: unknown, where: string, problems: string[]): Rule | undefined {
  if (!isRecord(raw)) {
    problems.push(`${where} must be an object`);
    return undefined;
  }
  const before = problems.length;
  // The guide lists every property a rule has; anything else is refused here rather than guessed at.
  for (const key of Object.keys(raw)) if (!RULE_KEYS.has(key)) problems.push(`${where} has unknown property "${key}"`);

  // "rulePriority — Type: integer, Required: yes".
  const rulePriority = raw.rulePriority;
  if (typeof rulePriority !== "number" || !Number.isInteger(rulePriority)) problems.push(`${where}.rulePriority must be an integer`);
  // "description — Type: string, Required: no".
  if (raw.description !== undefined && typeof raw.description !== "string") problems.push(`${where}.description must be a string`);

  const selection = raw.selection;
  if (!isRecord(selection)) {
    problems.push(`${where}.selection is required`);
    return undefined;
  }
  for (const key of Object.keys(selection)) {
    if (NOT_MODELLED_SELECTION_KEYS.has(key)) problems.push(`${where}.selection.${key}: the archive storage class is not modelled by this simulator`);
    else if (!SELECTION_KEYS.has(key)) problems.push(`${where}.selection has unknown property "${key}"`);
  }

  // "tagStatus — Acceptable options are tagged, untagged, or any."
  const tagStatus = selection.tagStatus;
  if (tagStatus !== "tagged" && tagStatus !== "untagged" && tagStatus !== "any") {
    problems.push(`${where}.selection.tagStatus must be "tagged", "untagged" or "any"`);
  }
  const tagPrefixList = stringList(selection.tagPrefixList, `${where}.selection.tagPrefixList`, problems);
  const tagPatternList = stringList(selection.tagPatternList, `${where}.selection.tagPatternList`, problems);
  if (tagStatus === "tagged") {
    // "If you specify tagged, then you must also specify a tagPrefixList value or a tagPatternList value."
    if (tagPrefixList === undefined && tagPatternList === undefined) problems.push(`${where}: tagStatus "tagged" needs a tagPrefixList or a tagPatternList`);
    // The guide offers the two as alternatives ("Required: yes, if tagStatus is set to tagged and
    // tagPrefixList isn't specified") and gives no meaning to both; AWS's CDK refuses the pair
    // (aws-cdk-lib, aws-ecr/lib/repository.ts, addLifecycleRule), and so does this simulator.
    if (tagPrefixList !== undefined && tagPatternList !== undefined) problems.push(`${where}: tagPrefixList and tagPatternList cannot be used together`);
  } else if (tagPrefixList !== undefined || tagPatternList !== undefined) {
    // "If you specify untagged, then you must omit both tagPrefixList and tagPatternList." For "any"
    // the guide gives the lists no meaning ("Only used if you specified "tagStatus": "tagged"").
    problems.push(`${where}: tagPrefixList and tagPatternList are only for tagStatus "tagged"`);
  }
  for (const pattern of tagPatternList ?? []) {
    // "There is a maximum limit of four wildcards (*) per string."
    if (pattern.split("*").length - 1 > 4) problems.push(`${where}: tag pattern "${pattern}" has more than four wildcards`);
  }

  const countType = selection.countType;
  if (typeof countType === "string" && NOT_MODELLED_COUNT_TYPES.has(countType)) {
    problems.push(`${where}.selection.countType "${countType}" is not modelled by this simulator`);
  } else if (countType !== "imageCountMoreThan" && countType !== "sinceImagePushed") {
    problems.push(`${where}.selection.countType must be "imageCountMoreThan" or "sinceImagePushed"`);
  }
  // "countUnit — Required: yes, only if countType is set to sinceImagePushed … Specify a count unit of
  // days … an error will occur if you specify a count unit when countType is any other value."
  if (countType === "sinceImagePushed" && selection.countUnit !== "days") problems.push(`${where}: countType "sinceImagePushed" needs countUnit "days"`);
  if (countType === "imageCountMoreThan" && selection.countUnit !== undefined) problems.push(`${where}: countUnit is only for age-based count types`);
  // "countNumber — Acceptable values are positive integers (0 is not an accepted value)."
  const countNumber = selection.countNumber;
  if (typeof countNumber !== "number" || !Number.isInteger(countNumber) || countNumber < 1) problems.push(`${where}.selection.countNumber must be a positive integer`);

  // "action type — The supported value is expire" (the 2026 guide adds transition, not modelled).
  const action = raw.action;
  if (!isRecord(action)) {
    problems.push(`${where}.action is required`);
  } else {
    for (const key of Object.keys(action)) {
      if (key === "targetStorageClass") problems.push(`${where}.action.targetStorageClass: the archive storage class is not modelled by this simulator`);
      else if (key !== "type") problems.push(`${where}.action has unknown property "${key}"`);
    }
    if (action.type === "transition") problems.push(`${where}.action.type "transition" is not modelled by this simulator`);
    else if (action.type !== "expire") problems.push(`${where}.action.type must be "expire"`);
  }

  if (problems.length > before) return undefined;
  return {
    rulePriority: rulePriority as number,
    tagStatus: tagStatus as TagStatus,
    ...(tagPrefixList === undefined ? {} : { tagPrefixList }),
    ...(tagPatternList === undefined ? {} : { tagPatternList }),
    countType: countType as CountType,
    countNumber: countNumber as number,
  };
}

function stringList(value: unknown, where: string, problems: string[]): readonly string[] | undefined {
  if (value === undefined) return undefined;
  // "Type: list[string]"; an empty list would select nothing, so it is not a list "specified".
  if (!Array.isArray(value) || value.length === 0 || !value.every((item) => typeof item === "string" && item !== "")) {
    problems.push(`${where} must be a non-empty list of non-empty strings`);
    return undefined;
  }
  return value as string[];
}

/**
 * Whether an image meets a rule's tagging requirements — the images the rule "identifies".
 *
 * "When using the tagPrefixList, an image is successfully matched if *all* of the tags in the
 * tagPrefixList value are matched against any of the image's tags" ("Lifecycle policy evaluation
 * rules"); for patterns the properties page says the same: "If you specify multiple tags, only the
 * images with all specified tags are selected". So every listed prefix/pattern must match some tag.
 */
export function matchesTagRequirements(rule: Pick<Rule, "tagStatus" | "tagPrefixList" | "tagPatternList">, image: Pick<EcrImage, "tags">): boolean {
  switch (rule.tagStatus) {
    // "If you specify any, then all images have the rule evaluated against them."
    case "any":
      return true;
    case "untagged":
      return image.tags.length === 0;
    case "tagged":
      if (rule.tagPrefixList !== undefined) return rule.tagPrefixList.every((prefix) => image.tags.some((tag) => tag.startsWith(prefix)));
      return (rule.tagPatternList ?? []).every((pattern) => image.tags.some((tag) => matchesTagPattern(pattern, tag)));
  }
}

/**
 * A tag pattern matches a whole tag, each `*` standing for any run of characters, none included:
 * the guide's "if your images are tagged as prod, prod1, prod2, and so on, you would use the tag
 * pattern list prod* to specify all of them" has `prod*` match `prod` itself.
 */
export function matchesTagPattern(pattern: string, tag: string): boolean {
  const regex = pattern.split("*").map((literal) => literal.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^${regex}$`, "s").test(tag);
}

/**
 * The images a policy expires at the instant `now`.
 *
 * The evaluation rules ("Lifecycle policy evaluation rules"), in the order applied here:
 * - rules run by rulePriority, lowest first ("Rule priority": "A lifecycle policy rule with a priority
 *   of 1 is applied first");
 * - "An image is expired by exactly one or zero rules";
 * - "An image that matches the tagging requirements of a rule cannot be expired by a rule with a lower
 *   priority", and "Rules can never mark images that are marked by higher priority rules, but can still
 *   identify them as if they haven't been expired": a rule counts every image meeting its tagging
 *   requirements, then marks only those no earlier rule identified;
 * - "With countType = imageCountMoreThan, images are sorted from youngest to oldest based on
 *   pushed_at_time and then all images greater than the specified count are expired";
 * - "With countType = sinceImagePushed, all images whose pushed_at_time is older than the specified
 *   number of days based on countNumber are expired". Older means strictly older: in the guide's
 *   "Filtering on all images", Example B, an untagged image pushed "1 day ago" survives a 1-day rule.
 */
export function evaluateLifecyclePolicy(policyText: string, images: readonly EcrImage[], now: Date): Expiration[] {
  const rules = parseLifecyclePolicy(policyText);
  const identifiedEarlier = new Set<string>();
  const expirations: Expiration[] = [];
  for (const rule of rules) {
    const identified = images.filter((image) => matchesTagRequirements(rule, image));
    for (const image of candidatesForExpiry(rule, identified, now)) {
      if (!identifiedEarlier.has(image.digest)) expirations.push({ digest: image.digest, rulePriority: rule.rulePriority });
    }
    for (const image of identified) identifiedEarlier.add(image.digest);
  }
  return expirations;
}

function candidatesForExpiry(rule: Rule, identified: readonly EcrImage[], now: Date): readonly EcrImage[] {
  if (rule.countType === "sinceImagePushed") {
    return identified.filter((image) => now.getTime() - image.pushedAt.getTime() > rule.countNumber * DAY_MS);
  }
  const youngestFirst = [...identified].sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime());
  const lastKept = youngestFirst[rule.countNumber - 1];
  const firstExpired = youngestFirst[rule.countNumber];
  // The guide orders by pushed_at_time alone; which of two images pushed at the same instant it keeps
  // is undocumented, so a tie across the count boundary is an error rather than a coin toss.
  if (lastKept !== undefined && firstExpired !== undefined && lastKept.pushedAt.getTime() === firstExpired.pushedAt.getTime()) {
    throw new Error(`rule ${rule.rulePriority}: ${lastKept.digest} and ${firstExpired.digest} share a push time at the count boundary; ECR documents no order for them`);
  }
  return youngestFirst.slice(rule.countNumber);
}

/**
 * The images of one repository with ECR's tag behaviour, enough to replay builds:
 * - tags are mutable (the default; "Preventing image tags from being overwritten in Amazon ECR": only
 *   with tag immutability on is a push with an existing tag refused), so pushing a tag moves it, and
 *   an image that loses its last tag stays, untagged — the images `tagStatus: untagged` rules exist for;
 * - pushing a manifest that is already there adds its tags and keeps its original push time, the time
 *   lifecycle rules go by (aws/containers-roadmap issue 2746, "Allow ECR lifecycle policies to account
 *   for image re-tagging to prevent premature image expiration", 2026).
 */
export class SimulatedRepository {
  private readonly stored = new Map<string, { tags: Set<string>; pushedAt: Date }>();

  /** Pushes the manifest `digest` with `tags` at the instant `at`. */
  push(digest: string, tags: readonly string[], at: Date): void {
    for (const [otherDigest, other] of this.stored) {
      if (otherDigest !== digest) for (const tag of tags) other.tags.delete(tag);
    }
    const existing = this.stored.get(digest);
    if (existing === undefined) this.stored.set(digest, { tags: new Set(tags), pushedAt: at });
    else for (const tag of tags) existing.tags.add(tag);
  }

  images(): EcrImage[] {
    return [...this.stored].map(([digest, { tags, pushedAt }]) => ({ digest, tags: [...tags].sort(), pushedAt }));
  }

  /** The image a tag names now, if any. */
  imageTagged(tag: string): EcrImage | undefined {
    return this.images().find((image) => image.tags.includes(tag));
  }

  /** Evaluates the policy at `now` and deletes what it expires, as ECR's lifecycle run does. */
  applyLifecyclePolicy(policyText: string, now: Date): Expiration[] {
    const expirations = evaluateLifecyclePolicy(policyText, this.images(), now);
    for (const { digest } of expirations) this.stored.delete(digest);
    return expirations;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
