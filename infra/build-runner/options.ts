// The runner's parameters: read from the environment and validated, every problem reported at once.

// limits: from the shared settings table (wired in by the contract change)
const LIMITS: Readonly<Record<NumberVariable, Limit>> = {
  CODEBUILD_MAX_RETRIES: { min: 1, max: Infinity, integer: true },
  CODEBUILD_RETRY_DELAY_SECONDS: { min: 0, max: Infinity, integer: false },
  CODEBUILD_TIMEOUT_MINUTES: { min: 0, max: Infinity, integer: false, exclusive: true },
  BUILD_POLL_INTERVAL_SECONDS: { min: 0, max: Infinity, integer: false, exclusive: true },
};

/** The runner's numeric variables. */
type NumberVariable = "CODEBUILD_MAX_RETRIES" | "CODEBUILD_RETRY_DELAY_SECONDS" | "CODEBUILD_TIMEOUT_MINUTES" | "BUILD_POLL_INTERVAL_SECONDS";

/** The values a numeric variable accepts. */
interface Limit {
  readonly min: number;
  /** Inclusive; `Infinity` for no upper bound. */
  readonly max: number;
  readonly integer: boolean;
  /** `true`: the value must be strictly greater than `min`. */
  readonly exclusive?: boolean;
}

/** Validated runner parameters, read from the environment by {@link parseRunnerEnv}. */
export interface RunnerOptions {
  /** CodeBuild project to start (`CODEBUILD_PROJECT_NAME`). */
  readonly projectName: string;
  /** AWS region (`AWS_REGION`); the SDK reads the same variable. */
  readonly region: string;
  /** Attempts to start the build while the service role is not yet assumable (`CODEBUILD_MAX_RETRIES`). @default 10 */
  readonly maxAttempts: number;
  /** Pause between those attempts, ms (`CODEBUILD_RETRY_DELAY_SECONDS`). @default 30 s */
  readonly retryDelayMs: number;
  /** The build is stopped and the runner fails after this long since the build started, ms (`CODEBUILD_TIMEOUT_MINUTES`). @default 30 min */
  readonly timeoutMs: number;
  /** Pause between BatchGetBuilds calls, ms (`BUILD_POLL_INTERVAL_SECONDS`). @default 5 s */
  readonly pollIntervalMs: number;
  /** SHA-256 of the build context (`BUILD_CONTEXT_SHA256`), printed for the record only. */
  readonly contextSha256?: string;
  /**
   * The project's compute type (`CODEBUILD_COMPUTE_TYPE`, e.g. BUILD_GENERAL1_MEDIUM), used only to
   * name the account quota when CodeBuild refuses a build. @default read from the project (BatchGetProjects)
   */
  readonly computeType?: string;
  /** The project's environment type (`CODEBUILD_ENVIRONMENT_TYPE`), for the same purpose. @default read from the project */
  readonly environmentType?: EnvironmentType;
}

/** The CodeBuild environment types this project's build can use (x86_64 and arm64 Docker builds). */
export type EnvironmentType = "LINUX_CONTAINER" | "ARM_CONTAINER";
const ENVIRONMENT_TYPES: readonly string[] = ["LINUX_CONTAINER", "ARM_CONTAINER"];

/** An environment variable the runner needs is missing or invalid; lists every problem found. */
export class RunnerConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid build runner environment:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "RunnerConfigError";
  }
}

/** The environment the runner reads, usually `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** How one numeric variable is read; what it accepts is its row of {@link LIMITS}. */
interface NumberRule {
  readonly name: NumberVariable;
  readonly fallback: number;
  readonly unit: string;
}

function readNumber(env: Env, rule: NumberRule, problems: string[]): number {
  const limit = LIMITS[rule.name];
  const raw = env[rule.name]?.trim();
  // An empty variable counts as unset: the Pulumi program may pass "" for an unset config key.
  if (raw === undefined || raw === "") return rule.fallback;
  const syntax = limit.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  const value = Number(raw);
  const inRange = (limit.exclusive ? value > limit.min : value >= limit.min) && value <= limit.max;
  if (!syntax.test(raw) || !Number.isFinite(value) || !inRange) {
    const kind = limit.integer ? "a whole number" : "a number";
    const upper = limit.max === Infinity ? "" : ` and ≤ ${limit.max}`;
    const bound = `${limit.exclusive ? ">" : "≥"} ${limit.min}${upper}`;
    problems.push(
      `${rule.name}=${JSON.stringify(env[rule.name])} is not allowed: must be ${kind} ${bound} (${rule.unit}; default ${rule.fallback})`,
    );
    return rule.fallback;
  }
  return value;
}

// CodeBuild's own constraint on project names.
const PROJECT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{1,254}$/;
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d+$/;
// CodeBuild's compute type values are upper-case enum names (BUILD_GENERAL1_*, BUILD_LAMBDA_*, ATTRIBUTE_BASED_COMPUTE, …).
const COMPUTE_TYPE_PATTERN = /^[A-Z][A-Z0-9_]{1,63}$/;

/**
 * Reads and validates the runner's parameters from the environment.
 *
 * @param env - usually `process.env`.
 * @returns the frozen options; optional variables fall back to their defaults when unset or empty.
 * @throws RunnerConfigError naming every invalid variable, its value and what is allowed.
 */
export function parseRunnerEnv(env: Env): RunnerOptions {
  const problems: string[] = [];

  const projectName = env.CODEBUILD_PROJECT_NAME?.trim() ?? "";
  if (projectName === "") {
    problems.push("CODEBUILD_PROJECT_NAME is required: the name of the CodeBuild project to start");
  } else if (!PROJECT_NAME_PATTERN.test(projectName)) {
    problems.push(
      `CODEBUILD_PROJECT_NAME=${JSON.stringify(projectName)} is not allowed: 2-255 characters, letters, digits, '-' and '_', starting with a letter or digit`,
    );
  }

  const region = env.AWS_REGION?.trim() ?? "";
  if (region === "") {
    problems.push("AWS_REGION is required: the region of the CodeBuild project, e.g. us-east-2");
  } else if (!REGION_PATTERN.test(region)) {
    problems.push(`AWS_REGION=${JSON.stringify(region)} is not allowed: an AWS region name such as us-east-2`);
  }

  const maxAttempts = readNumber(env, { name: "CODEBUILD_MAX_RETRIES", fallback: 10, unit: "attempts to start the build" }, problems);
  const retryDelaySeconds = readNumber(env, { name: "CODEBUILD_RETRY_DELAY_SECONDS", fallback: 30, unit: "seconds between attempts" }, problems);
  const timeoutMinutes = readNumber(env, { name: "CODEBUILD_TIMEOUT_MINUTES", fallback: 30, unit: "minutes" }, problems);
  const pollSeconds = readNumber(env, { name: "BUILD_POLL_INTERVAL_SECONDS", fallback: 5, unit: "seconds" }, problems);

  const computeType = env.CODEBUILD_COMPUTE_TYPE?.trim();
  if (computeType && !COMPUTE_TYPE_PATTERN.test(computeType)) {
    problems.push(
      `CODEBUILD_COMPUTE_TYPE=${JSON.stringify(computeType)} is not allowed: a CodeBuild compute type such as BUILD_GENERAL1_MEDIUM (optional)`,
    );
  }
  const environmentType = env.CODEBUILD_ENVIRONMENT_TYPE?.trim();
  if (environmentType && !ENVIRONMENT_TYPES.includes(environmentType)) {
    problems.push(
      `CODEBUILD_ENVIRONMENT_TYPE=${JSON.stringify(environmentType)} is not allowed: ${ENVIRONMENT_TYPES.join(" or ")} (optional)`,
    );
  }

  if (problems.length > 0) throw new RunnerConfigError(problems);

  const contextSha256 = env.BUILD_CONTEXT_SHA256?.trim();
  return Object.freeze({
    projectName,
    region,
    maxAttempts,
    retryDelayMs: retryDelaySeconds * 1000,
    timeoutMs: timeoutMinutes * 60_000,
    pollIntervalMs: pollSeconds * 1000,
    ...(contextSha256 ? { contextSha256 } : {}),
    ...(computeType ? { computeType } : {}),
    ...(environmentType ? { environmentType: environmentType as EnvironmentType } : {}),
  });
}
