import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CACHE_TAG, createBuildspec } from "../infra/buildspec";
import { APP_TAG_PATTERN, APP_TAG_PREFIX, LATEST_TAG, UNTAGGED_EXPIRY_DAYS, createLifecyclePolicy } from "../infra/registry-lifecycle";
import {
  InvalidLifecyclePolicyError,
  SimulatedRepository,
  evaluateLifecyclePolicy,
  matchesTagPattern,
  matchesTagRequirements,
  parseLifecyclePolicy,
  type EcrImage,
} from "./support/ecr-lifecycle";

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const NOW = new Date("2026-03-02T12:00:00Z");

function daysAgo(days: number, extraHours = 0): Date {
  return new Date(NOW.getTime() - days * DAY_MS - extraHours * HOUR_MS);
}

function digestOf(label: string): string {
  return `sha256:${createHash("sha256").update(label).digest("hex")}`;
}

/** The guide names its images A, B, …; the digest stands in for the name. */
function image(name: string, tags: string[], pushedAt: Date): EcrImage {
  return { digest: name, tags, pushedAt };
}

function expiredNames(policy: unknown, images: EcrImage[]): string[] {
  return evaluateLifecyclePolicy(JSON.stringify(policy), images, NOW).map((e) => e.digest).sort();
}

function countRule(rulePriority: number, tags: { tagPrefixList: string[] } | { tagPatternList: string[] }, countNumber: number) {
  return { rulePriority, description: `Rule ${rulePriority}`, selection: { tagStatus: "tagged", ...tags, countType: "imageCountMoreThan", countNumber }, action: { type: "expire" } };
}

// The 2023 edition of the guide writes these examples with tagPrefixList; the 2026 edition with
// tagPatternList and a trailing `*`. Both must give the outcome the guide states.
const TAG_FORMS = [
  { form: "tagPrefixList", tags: (...names: string[]) => ({ tagPrefixList: names }) },
  { form: "tagPatternList", tags: (...names: string[]) => ({ tagPatternList: names.map((n) => `${n}*`) }) },
] as const;

describe("the ECR lifecycle simulator replays the user guide's examples (Examples of lifecycle policies in Amazon ECR)", () => {
  describe.each(TAG_FORMS)("written with $form", ({ tags }) => {
    // "Filtering on multiple rules": the same repository for Examples A and B.
    const multipleRulesRepository = [
      image("A", ["beta-1", "prod-1"], daysAgo(10)),
      image("B", ["beta-2", "prod-2"], daysAgo(9)),
      image("C", ["beta-3"], daysAgo(8)),
    ];

    it("Filtering on multiple rules, Example A: a lower rule cannot expire what a higher rule matched (Result: Image A is expired)", () => {
      const policy = { rules: [countRule(1, tags("prod"), 1), countRule(2, tags("beta"), 1)] };
      expect(expiredNames(policy, multipleRulesRepository)).toEqual(["A"]);
    });

    it("Filtering on multiple rules, Example B: swapping the priorities changes the outcome (Result: Images A and B are expired)", () => {
      const policy = { rules: [countRule(1, tags("beta"), 1), countRule(2, tags("prod"), 1)] };
      expect(expiredNames(policy, multipleRulesRepository)).toEqual(["A", "B"]);
    });

    it("Filtering on multiple tags in a single rule, Example A: an image must match every listed tag (Result: Image C is expired)", () => {
      const images = [
        image("A", ["alpha-1"], daysAgo(12)),
        image("B", ["beta-1"], daysAgo(11)),
        image("C", ["alpha-2", "beta-2"], daysAgo(10)),
        image("D", ["alpha-3"], daysAgo(4)),
        image("E", ["beta-3"], daysAgo(3)),
        image("F", ["alpha-4", "beta-4"], daysAgo(2)),
      ];
      const policy = {
        rules: [{
          rulePriority: 1, description: "Rule 1",
          selection: { tagStatus: "tagged", ...tags("alpha", "beta"), countType: "sinceImagePushed", countNumber: 5, countUnit: "days" },
          action: { type: "expire" },
        }],
      };
      expect(expiredNames(policy, images)).toEqual(["C"]);
    });

    it("Filtering on multiple tags in a single rule, Example B: other tags do not stop a match (Result: Images A and B are expired)", () => {
      const images = [
        image("A", ["alpha-1", "beta-1", "gamma-1"], daysAgo(10)),
        image("B", ["alpha-2", "beta-2"], daysAgo(9)),
        image("C", ["alpha-3", "beta-3", "gamma-2"], daysAgo(8)),
      ];
      expect(expiredNames({ rules: [countRule(1, tags("alpha", "beta"), 1)] }, images)).toEqual(["A", "B"]);
    });

    it("Filtering on all images, Example B: the any rule still counts images higher rules identified (Result: Images A, B, and D are expired)", () => {
      // The guide gives D and E the same age; its outcome (rule 3 keeps one image and expires D) needs
      // E to be the younger, so D is placed an hour earlier. E, untagged and pushed exactly a day ago,
      // survives rule 2: "older than" one day is strict.
      const images = [
        image("A", ["alpha-1", "beta-1"], daysAgo(4)),
        image("B", [], daysAgo(3)),
        image("C", ["alpha-2"], daysAgo(2)),
        image("D", ["git hash"], daysAgo(1, 1)),
        image("E", [], daysAgo(1)),
      ];
      const policy = {
        rules: [
          countRule(1, tags("alpha"), 1),
          { rulePriority: 2, description: "Rule 2", selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 1 }, action: { type: "expire" } },
          { rulePriority: 3, description: "Rule 3", selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 1 }, action: { type: "expire" } },
        ],
      };
      const expirations = evaluateLifecyclePolicy(JSON.stringify(policy), images, NOW);
      // The guide also says which rule marks each: A by rule 1, B by rule 2, D by rule 3.
      expect([...expirations].sort((a, b) => a.digest.localeCompare(b.digest))).toEqual([
        { digest: "A", rulePriority: 1 },
        { digest: "B", rulePriority: 2 },
        { digest: "D", rulePriority: 3 },
      ]);
    });
  });

  it("Filtering on all images, Example A: an any rule keeps only the newest image, tagged or not (Result: Images A, B, and C are expired)", () => {
    const images = [
      image("A", ["alpha-1"], daysAgo(4)),
      image("B", ["beta-1"], daysAgo(3)),
      image("C", [], daysAgo(2)),
      image("D", ["alpha-2"], daysAgo(1)),
    ];
    const policy = { rules: [{ rulePriority: 1, description: "Rule 1", selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 1 }, action: { type: "expire" } }] };
    expect(expiredNames(policy, images)).toEqual(["A", "B", "C"]);
  });
});

describe("the simulator's tag matching (Lifecycle policy properties in Amazon ECR)", () => {
  it("lets * stand for any run of characters, none included, and matches whole tags", () => {
    expect(matchesTagPattern("prod*", "prod")).toBe(true);
    expect(matchesTagPattern("prod*", "prod2")).toBe(true);
    expect(matchesTagPattern("prod*", "preprod")).toBe(false);
    expect(matchesTagPattern("*test*1*2*3", "a-test-1-2-3")).toBe(true);
    expect(matchesTagPattern("latest", "latest")).toBe(true);
    expect(matchesTagPattern("latest", "latest-1")).toBe(false);
    expect(matchesTagPattern("v1.2", "v1x2")).toBe(false);
  });

  it("needs every listed prefix or pattern to match some tag of the image", () => {
    const rule = { tagStatus: "tagged", tagPatternList: ["alpha*", "beta*"] } as const;
    expect(matchesTagRequirements(rule, { tags: ["alpha-1", "beta-1"] })).toBe(true);
    expect(matchesTagRequirements(rule, { tags: ["alpha-1"] })).toBe(false);
    expect(matchesTagRequirements({ tagStatus: "tagged", tagPrefixList: ["alpha"] }, { tags: ["alpha-1", "zeta"] })).toBe(true);
    expect(matchesTagRequirements({ tagStatus: "untagged" }, { tags: [] })).toBe(true);
    expect(matchesTagRequirements({ tagStatus: "untagged" }, { tags: ["x"] })).toBe(false);
    expect(matchesTagRequirements({ tagStatus: "any" }, { tags: [] })).toBe(true);
  });
});

describe("the simulator refuses what the documented properties rule out", () => {
  const untagged = (rulePriority: number, extra: Record<string, unknown> = {}) => ({
    rulePriority, selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 1, ...extra }, action: { type: "expire" },
  });
  const any = (rulePriority: number) => ({ rulePriority, selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 3 }, action: { type: "expire" } });
  const tagged = (rulePriority: number, selection: Record<string, unknown>) => ({
    rulePriority, selection: { tagStatus: "tagged", countType: "imageCountMoreThan", countNumber: 1, ...selection }, action: { type: "expire" },
  });

  it.each([
    ["two rules with one rulePriority", [tagged(1, { tagPatternList: ["a*"] }), tagged(1, { tagPatternList: ["b*"] })], "rulePriority 1 is used by more than one rule"],
    ["an any rule that is not evaluated last", [any(1), tagged(2, { tagPatternList: ["a*"] })], 'the tagStatus "any" rule (rulePriority 1) must be the only one'],
    ["a tagged rule without tags to match", [tagged(1, {})], 'tagStatus "tagged" needs a tagPrefixList or a tagPatternList'],
    ["an untagged rule with tags to match", [untagged(1, { tagPrefixList: ["a"] })], 'only for tagStatus "tagged"'],
    ["both a prefix and a pattern list", [tagged(1, { tagPrefixList: ["a"], tagPatternList: ["a*"] })], "cannot be used together"],
    ["a pattern with five wildcards", [tagged(1, { tagPatternList: ["test*1*2*3*4*5*6"] })], "more than four wildcards"],
    ["a countUnit on a count rule", [tagged(1, { tagPatternList: ["a*"], countUnit: "days" })], "countUnit is only for age-based count types"],
    ["an age rule without days", [untagged(1, { countUnit: undefined })], 'needs countUnit "days"'],
    ["a countNumber of 0", [tagged(1, { tagPatternList: ["a*"], countNumber: 0 })], "countNumber must be a positive integer"],
    ["two rules for untagged images", [untagged(1), untagged(2)], 'only one rule may have tagStatus "untagged"'],
    ["two rules with the same prefixes", [tagged(1, { tagPrefixList: ["a", "b"] }), tagged(2, { tagPrefixList: ["b", "a"] })], "the same set of tag prefixes"],
    ["an unknown selection property", [tagged(1, { tagPatternList: ["a*"], tagRegex: "a.*" })], 'unknown property "tagRegex"'],
    ["the archive storage class, which is not modelled", [tagged(1, { tagPatternList: ["a*"], storageClass: "archive" })], "not modelled"],
  ])("refuses %s", (_case, rules, problem) => {
    const attempt = () => parseLifecyclePolicy(JSON.stringify({ rules }));
    expect(attempt).toThrow(InvalidLifecyclePolicyError);
    expect(attempt).toThrow(problem);
  });

  it("accepts four wildcards in a pattern, the documented limit", () => {
    expect(parseLifecyclePolicy(JSON.stringify({ rules: [tagged(1, { tagPatternList: ["*test*1*2*3", "test*1*2*3*"] })] }))).toHaveLength(1);
  });

  it("refuses to pick between two images pushed at the same instant across a count boundary", () => {
    const policy = JSON.stringify({ rules: [tagged(1, { tagPatternList: ["a*"] })] });
    const images = [image("X", ["a-1"], daysAgo(1)), image("Y", ["a-2"], daysAgo(1))];
    expect(() => evaluateLifecyclePolicy(policy, images, NOW)).toThrow("share a push time");
  });
});

describe("the repository's lifecycle policy", () => {
  it("is a policy ECR accepts for every retention the configuration allows", () => {
    for (const retention of [1, 2, 5, 1000]) {
      expect(parseLifecyclePolicy(JSON.stringify(createLifecyclePolicy(retention)))).toHaveLength(4);
    }
  });

  it("lists its rules by rising rulePriority, the order ECR hands them back in", () => {
    const priorities = createLifecyclePolicy(5).rules.map((r) => r.rulePriority);
    expect(priorities).toEqual([...priorities].sort((a, b) => a - b));
  });

  it("refuses a retention ECR would refuse, naming the argument", () => {
    expect(() => createLifecyclePolicy(0)).toThrow("imageRetention must be a whole number of images, at least 1; got 0");
    expect(() => createLifecyclePolicy(2.5)).toThrow("got 2.5");
  });

  it("counts app images by a pattern that matches the build tags and neither the cache nor latest", () => {
    expect(matchesTagPattern(APP_TAG_PATTERN, `${APP_TAG_PREFIX}17`)).toBe(true);
    expect(matchesTagPattern(APP_TAG_PATTERN, CACHE_TAG)).toBe(false);
    expect(matchesTagPattern(APP_TAG_PATTERN, LATEST_TAG)).toBe(false);
    // Why not the prefix "build": it would count the cache manifest as an app image.
    expect(matchesTagRequirements({ tagStatus: "tagged", tagPrefixList: ["build"] }, { tags: [CACHE_TAG] })).toBe(true);
  });

  it("matches the tags the buildspec pushes", () => {
    const build = createBuildspec("x86_64").phases.build.commands.find((c) => c.startsWith("docker buildx build")) ?? "";
    expect(build).toContain(`--tag "$ECR_REPOSITORY_URI:${APP_TAG_PREFIX}$CODEBUILD_BUILD_NUMBER"`);
    expect(build).toContain(`--tag "$ECR_REPOSITORY_URI:${LATEST_TAG}"`);
    expect(build).toContain(`ref=$ECR_REPOSITORY_URI:${CACHE_TAG}`);
  });
});

// ---- Successive builds --------------------------------------------------------------------------

type PushOrder = "cache pushed last" | "image pushed last";

interface Build {
  readonly number: number;
  readonly appDigest: string;
  readonly cacheDigest: string;
  readonly startsAt: Date;
}

/** What the repository should hold at one instant, from what has been pushed so far. */
interface Expectation {
  readonly appPushed: readonly Build[];
  readonly cachesPushed: readonly { digest: string; pushedAt: Date }[];
}

/** The policy as `infra/image-pipeline.ts` wrote it before issue 15: the "before" of the fix. */
function policyBeforeIssue15(imageRetention: number): string {
  return JSON.stringify({
    rules: [
      { rulePriority: 1, description: "Keep the BuildKit layer cache", selection: { tagStatus: "tagged", tagPrefixList: [CACHE_TAG], countType: "imageCountMoreThan", countNumber: 1 }, action: { type: "expire" } },
      { rulePriority: 2, description: `Keep the newest ${imageRetention} images`, selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: imageRetention }, action: { type: "expire" } },
    ],
  });
}

const FIRST_BUILD = new Date("2026-03-01T09:00:00Z");
/** BuildKit pushes the image and the cache in parallel; whichever finishes second lands this much later. */
const PUSH_GAP_MS = 40_000;

function plannedBuilds(count: number, hoursBetweenBuilds: number): Build[] {
  return Array.from({ length: count }, (_, i) => ({
    number: i + 1,
    appDigest: digestOf(`app image of build ${i + 1}`),
    cacheDigest: digestOf(`cache manifest of build ${i + 1}`),
    startsAt: new Date(FIRST_BUILD.getTime() + i * hoursBetweenBuilds * HOUR_MS),
  }));
}

/**
 * Replays the builds against a repository with ECR's tag behaviour, applying the policy between the
 * two pushes of every build, just after both, halfway to the next build and just before it (ECR runs
 * lifecycle policies at a time of its own, "within 24 hours"), and three days after the last.
 * `check` sees every instant with what had been pushed by then.
 */
function replayBuilds(
  policyText: string,
  builds: readonly Build[],
  order: PushOrder,
  hoursBetweenBuilds: number,
  check: (repository: SimulatedRepository, now: Date, expected: Expectation) => void,
): SimulatedRepository {
  const repository = new SimulatedRepository();
  const appPushed: Build[] = [];
  const cachesPushed: { digest: string; pushedAt: Date }[] = [];
  const evaluate = (now: Date) => {
    repository.applyLifecyclePolicy(policyText, now);
    check(repository, now, { appPushed: [...appPushed], cachesPushed: [...cachesPushed] });
  };
  const pushApp = (build: Build, at: Date) => {
    repository.push(build.appDigest, [`${APP_TAG_PREFIX}${build.number}`, LATEST_TAG], at);
    appPushed.push(build);
  };
  const pushCache = (build: Build, at: Date) => {
    repository.push(build.cacheDigest, [CACHE_TAG], at);
    cachesPushed.push({ digest: build.cacheDigest, pushedAt: at });
  };

  for (const build of builds) {
    const first = build.startsAt;
    const second = new Date(first.getTime() + PUSH_GAP_MS);
    if (order === "cache pushed last") pushApp(build, first);
    else pushCache(build, first);
    evaluate(new Date(first.getTime() + PUSH_GAP_MS / 2));
    if (order === "cache pushed last") pushCache(build, second);
    else pushApp(build, second);
    const gapMs = hoursBetweenBuilds * HOUR_MS;
    for (const offsetMs of [60_000, gapMs / 2, gapMs - 60_000]) evaluate(new Date(second.getTime() + offsetMs));
  }
  const last = builds[builds.length - 1];
  evaluate(new Date(last.startsAt.getTime() + 3 * DAY_MS));
  return repository;
}

function appImageDigests(repository: SimulatedRepository): string[] {
  return repository.images().filter((i) => i.tags.some((t) => matchesTagPattern(APP_TAG_PATTERN, t))).map((i) => i.digest).sort();
}

const SCHEDULES = [
  { schedule: "one build a day", hoursBetweenBuilds: 24 },
  { schedule: "five builds a day", hoursBetweenBuilds: 4.8 },
] as const;
const ORDERS: readonly PushOrder[] = ["cache pushed last", "image pushed last"];
const SCENARIOS = [1, 2, 5].flatMap((retention) => ORDERS.flatMap((order) => SCHEDULES.map((s) => ({ retention, order, ...s }))));
const BUILD_COUNT = 8;

describe("over successive builds, the repository's lifecycle policy", () => {
  it.each(SCENARIOS)(
    "never expires the running image, keeps min(N, builds) app images and the current cache, and expires old caches — retention $retention, $order, $schedule",
    ({ retention, order, hoursBetweenBuilds }) => {
      const policyText = JSON.stringify(createLifecyclePolicy(retention));
      let evaluations = 0;
      replayBuilds(policyText, plannedBuilds(BUILD_COUNT, hoursBetweenBuilds), order, hoursBetweenBuilds, (repository, now, expected) => {
        evaluations += 1;
        const at = now.toISOString();
        const running = expected.appPushed.at(-1);
        if (running !== undefined) {
          expect(repository.images().map((i) => i.digest), `the running image at ${at}`).toContain(running.appDigest);
        }
        // The newest min(N, builds so far) app images, and no other.
        const kept = expected.appPushed.slice(-retention).map((b) => b.appDigest).sort();
        expect(appImageDigests(repository), `app images at ${at}`).toEqual(kept);

        const currentCache = expected.cachesPushed.at(-1);
        if (currentCache !== undefined) expect(repository.imageTagged(CACHE_TAG)?.digest, `cache at ${at}`).toBe(currentCache.digest);
        const supersededWithinLimit = expected.cachesPushed
          .slice(0, -1)
          .filter((c) => now.getTime() - c.pushedAt.getTime() <= UNTAGGED_EXPIRY_DAYS * DAY_MS)
          .map((c) => c.digest)
          .sort();
        const untagged = repository.images().filter((i) => i.tags.length === 0).map((i) => i.digest).sort();
        expect(untagged, `untagged manifests at ${at}`).toEqual(supersededWithinLimit);
      });
      expect(evaluations).toBe(BUILD_COUNT * 4 + 1);
    },
  );

  it("ends with the newest N app images and the current cache once old caches have aged out", () => {
    const builds = plannedBuilds(BUILD_COUNT, 4.8);
    const repository = replayBuilds(JSON.stringify(createLifecyclePolicy(2)), builds, "cache pushed last", 4.8, () => {});
    expect(repository.images().map((i) => i.digest).sort()).toEqual([builds[6].appDigest, builds[7].appDigest, builds[7].cacheDigest].sort());
    expect(repository.imageTagged(LATEST_TAG)?.digest).toBe(builds[7].appDigest);
  });

  it("keeps the running image when a build reproduces an older image, whose push time ECR keeps", () => {
    const policyText = JSON.stringify(createLifecyclePolicy(1));
    const [first, second, third] = plannedBuilds(3, 2);
    const repository = new SimulatedRepository();
    repository.push(first.appDigest, [`${APP_TAG_PREFIX}1`, LATEST_TAG], first.startsAt);
    repository.push(second.appDigest, [`${APP_TAG_PREFIX}2`, LATEST_TAG], second.startsAt);
    // Build 3 reverts build 2's change the same morning, before ECR's next lifecycle run ("within 24
    // hours"), and so produces build 1's bytes again: the existing manifest gets the new tags, not a
    // new push time.
    repository.push(first.appDigest, [`${APP_TAG_PREFIX}3`, LATEST_TAG], third.startsAt);
    const running = repository.imageTagged(LATEST_TAG);
    expect(running?.digest).toBe(first.appDigest);
    expect(running?.pushedAt).toEqual(first.startsAt);
    const lifecycleRun = new Date(third.startsAt.getTime() + HOUR_MS);

    // Without the `latest` rule, the count ranks the running image as the older one and expires it.
    const withoutLatestRule = { rules: createLifecyclePolicy(1).rules.filter((r) => !("tagPatternList" in r.selection && r.selection.tagPatternList.includes(LATEST_TAG))) };
    expect(withoutLatestRule.rules).toHaveLength(3);
    expect(evaluateLifecyclePolicy(JSON.stringify(withoutLatestRule), repository.images(), lifecycleRun).map((e) => e.digest)).toEqual([first.appDigest]);

    expect(repository.applyLifecyclePolicy(policyText, lifecycleRun)).toEqual([]);
    expect(appImageDigests(repository)).toEqual([first.appDigest, second.appDigest].sort());
  });
});

describe("the policy before issue 15, replayed the same way", () => {
  it("expires the running image after every build with retention 1 when the cache is pushed last", () => {
    const builds = plannedBuilds(BUILD_COUNT, 24);
    const missedAfterBuild = new Set<number>();
    replayBuilds(policyBeforeIssue15(1), builds, "cache pushed last", 24, (repository, _now, expected) => {
      const running = expected.appPushed.at(-1);
      // Once both pushes of a build are done, the cache manifest is the newest image and fills the one place.
      if (running !== undefined && expected.cachesPushed.length === expected.appPushed.length && !repository.images().some((i) => i.digest === running.appDigest)) {
        missedAfterBuild.add(running.number);
      }
    });
    expect([...missedAfterBuild].sort((a, b) => a - b)).toEqual(builds.map((b) => b.number));
  });

  it.each([
    { retention: 2, order: "cache pushed last", appImagesLeft: 1 },
    { retention: 2, order: "image pushed last", appImagesLeft: 1 },
    { retention: 5, order: "cache pushed last", appImagesLeft: 2 },
    { retention: 5, order: "image pushed last", appImagesLeft: 3 },
  ] as const)("keeps only $appImagesLeft of $retention app images with the $order, one build a day", ({ retention, order, appImagesLeft }) => {
    const builds = plannedBuilds(BUILD_COUNT, 24);
    let leftJustAfterLastBuild: number | undefined;
    replayBuilds(policyBeforeIssue15(retention), builds, order, 24, (repository, now) => {
      if (now.getTime() === builds[BUILD_COUNT - 1].startsAt.getTime() + PUSH_GAP_MS + 60_000) leftJustAfterLastBuild = appImageDigests(repository).length;
    });
    expect(leftJustAfterLastBuild).toBe(appImagesLeft);
  });
});
