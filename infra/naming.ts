/**
 * Physical names for the few resources whose names are part of the contract (the ECR repository,
 * the CodeBuild project, the function and their log groups). Everything else is auto-named by
 * Pulumi, because S3 bucket names are global and two people deploying `knock-lambda`/`dev` must not
 * collide.
 *
 * Pulumi accepts stack names that AWS refuses and stack names that differ only in what a service
 * ignores (`Dev`/`dev` in an ECR name, `x.y`/`x-y` in a Lambda name). So each name is the plain
 * `<project>-<stack>` form whenever the service accepts that text exactly as it is; otherwise it is
 * the text cut down to what the service accepts plus `-` and the first 8 hex digits of the SHA-256
 * of `<project>/<stack>`. Stacks whose plain name was already valid keep it byte for byte, so their
 * resources are not replaced.
 *
 * The rules of the inputs (pulumi/pulumi):
 * - stack names: `sdk/go/common/tokens/stack_name.go` (ParseStackName) — 1 to 100 characters of
 *   `[A-Za-z0-9_.-]`, any of them first (a digit or `-` too); `pkg/backend/httpstate/backend.go`
 *   checks the same `^[A-Za-z0-9_.-]{1,100}$`.
 * - project names: `sdk/go/common/tokens/project.go` (ValidateProjectName) with `names.go` (IsName) —
 *   1 to 100 characters, the first `[A-Za-z_.]`, the rest `[A-Za-z0-9_.-]`.
 * Neither may contain `/`, so `<project>/<stack>` names exactly one pair.
 */
import { createHash } from "node:crypto";

/**
 * The project name in `Pulumi.yaml`. Only its stacks can keep the plain `<project>-<stack>` names:
 * with any two projects, `knock`/`lambda-dev` and `knock-lambda`/`dev` would give the same text,
 * and before this rule every project shared `knock-lambda-build-<stack>`.
 */
export const PROJECT_NAME = "knock-lambda";

/** How one AWS service names things: what it accepts as is, and how to make any text acceptable. */
interface NameRule {
  readonly maxLength: number;
  /** True when the service accepts `text` exactly (length aside). */
  accepts(text: string): boolean;
  /** Text the service accepts at any cut, before the hash is appended. */
  sanitise(text: string): string;
}

// Amazon ECR API Reference, CreateRepository, repositoryName: length 2–256, pattern
// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, and "must start with a
// letter". The current service model (aws-sdk / botocore `ecr/2015-09-21/service-2.json`) also
// allows `__` and runs of `-`; names here satisfy the stricter form, so both. No `/` is ever made.
const ECR_REPOSITORY: NameRule = {
  maxLength: 256,
  accepts: (text) => text.length >= 2 && /^[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*$/.test(text),
  sanitise: (text) => {
    const words = text.toLowerCase().split(/[^a-z0-9]+/).filter((word) => word !== "");
    // A project may start with `_` or `.` and then a digit; ECR wants a letter first.
    if (words.length === 0 || !/^[a-z]/.test(words[0])) words.unshift("knock");
    return words.join("-");
  },
};

// AWS Lambda API Reference, CreateFunction, FunctionName: a bare name is `[a-zA-Z0-9-_]+` (the name
// part of the documented pattern, also in the service model `lambda/2015-03-31/service-2.json`) and
// "If you specify only the function name, it is limited to 64 characters in length". No AWS document
// says Lambda or CodeBuild compares names regardless of case, so case is kept (`Prod_EU` stays).
const LAMBDA_FUNCTION: NameRule = {
  maxLength: 64,
  accepts: (text) => text.length >= 1 && /^[A-Za-z0-9_-]+$/.test(text),
  sanitise: (text) => text.replace(/[^A-Za-z0-9_-]+/g, "-"),
};

// AWS CodeBuild API Reference, CreateProject / Project, name: length 2–150, pattern
// `[A-Za-z0-9][A-Za-z0-9\-_]{1,254}` on the page and `{1,149}` in the service model
// (`codebuild/2016-10-06/service-2.json`); older copies said 255. The smallest bound is kept.
const CODEBUILD_PROJECT: NameRule = {
  maxLength: 150,
  accepts: (text) => text.length >= 2 && /^[A-Za-z0-9][A-Za-z0-9_-]+$/.test(text),
  sanitise: (text) => text.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^[^A-Za-z0-9]+/, ""),
};

/** First 8 hex digits of SHA-256(`<project>/<stack>`): 32 bits that tell apart pairs whose text the sanitising merged. */
function pairHash(project: string, stack: string): string {
  return createHash("sha256").update(`${project}/${stack}`).digest("hex").slice(0, 8);
}

function physicalName(rule: NameRule, plain: string, project: string, stack: string): string {
  if (project === PROJECT_NAME && plain.length <= rule.maxLength && rule.accepts(plain)) return plain;
  const suffix = `-${pairHash(project, stack)}`;
  // Cut first, then drop the separators the cut may leave, so the hash joins with a single `-`.
  const body = rule.sanitise(plain).slice(0, rule.maxLength - suffix.length).replace(/[^A-Za-z0-9]+$/, "");
  return `${body === "" ? "knock" : body}${suffix}`;
}

/**
 * ECR repository name: `<project>-<stack>` when ECR accepts it as is (lower case, single `.`/`_`/`-`
 * between letters and digits); otherwise that text in lower case with every run of other characters
 * turned into `-`, then `-` and the pair's hash — so `Dev`, `dev_` and `dev` get three repositories.
 *
 * @param project Pulumi project name (`pulumi.getProject()`).
 * @param stack Pulumi stack name (`pulumi.getStack()`).
 */
export function repositoryName(project: string, stack: string): string {
  return physicalName(ECR_REPOSITORY, `${project}-${stack}`, project, stack);
}

/**
 * CodeBuild project name: `<project>-build-<stack>` — for this project `knock-lambda-build-<stack>` —
 * when CodeBuild accepts it as is (no `.`); otherwise sanitised, with the pair's hash appended.
 *
 * @param stack Pulumi stack name.
 * @param project Pulumi project name; without it two projects' stacks of one name would share a
 *   CodeBuild project. @default PROJECT_NAME
 */
export function buildProjectName(stack: string, project: string = PROJECT_NAME): string {
  return physicalName(CODEBUILD_PROJECT, `${project}-build-${stack}`, project, stack);
}

/**
 * The log group CodeBuild writes a project's build logs to unless told otherwise. Valid for any
 * {@link buildProjectName}: CloudWatch Logs API Reference, CreateLogGroup — 1–512 characters of
 * `[\.\-_/#A-Za-z0-9]`.
 */
export function buildLogGroupName(project: string): string {
  return `/aws/codebuild/${project}`;
}

/**
 * Function name: `<project>-<stack>` when Lambda accepts it as is (letters, digits, `-`, `_`; at most
 * 64 characters); otherwise `.` runs become `-`, the text is cut to leave room, and the pair's hash
 * is appended. Fixed (not auto-named) because its log group `/aws/lambda/<function>` must exist
 * before the function does.
 *
 * @param project Pulumi project name.
 * @param stack Pulumi stack name.
 */
export function functionName(project: string, stack: string): string {
  return physicalName(LAMBDA_FUNCTION, `${project}-${stack}`, project, stack);
}

/** The log group Lambda writes to for a function of that name (valid for any {@link functionName}, as above). */
export function functionLogGroupName(name: string): string {
  return `/aws/lambda/${name}`;
}
