// The runner's parameters: read from the environment and validated, every problem reported at once.

import { checkInteger, SETTINGS } from "../../lambda/src/public";

/**
 * The runner's settings that are the stack's config keys: each variable's name, default and limits
 * come from the shared settings table, so the runner accepts exactly what `pulumi config set` does.
 */
const SETTING_OF = {
  CODEBUILD_MAX_RETRIES: "codebuild_max_retries",
  CODEBUILD_RETRY_DELAY_SECONDS: "codebuild_retry_delay",
  CODEBUILD_TIMEOUT_MINUTES: "codebuild_timeout_minutes",
} as const satisfies Record<string, keyof typeof SETTINGS>;

type SettingVariable = keyof typeof SETTING_OF;

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

/** An empty variable counts as unset: the Pulumi program may pass "" for an unset config key. */
function given(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
}

/** Reads one of the stack's settings from its variable, with the settings table's default and limits. */
function readSetting(env: Env, name: SettingVariable, unit: string, problems: string[]): number {
  const key = SETTING_OF[name];
  const fallback = SETTINGS[key].default;
  const raw = given(env, name);
  if (raw === undefined) return fallback;
  const checked = checkInteger(key, raw);
  if (checked.ok) return checked.value;
  problems.push(`${name}=${JSON.stringify(env[name])} is not allowed: ${checked.allowed} (${unit}; default ${fallback}; config key ${key})`);
  return fallback;
}

/**
 * The pause between polls (`BUILD_POLL_INTERVAL_SECONDS`): the runner's own knob, not a config key
 * (the stack never sets it; tests shorten it), so any number of seconds above 0.
 */
function readPollSeconds(env: Env, problems: string[]): number {
  const fallback = 5;
  const raw = given(env, "BUILD_POLL_INTERVAL_SECONDS");
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value) || value <= 0) {
    problems.push(`BUILD_POLL_INTERVAL_SECONDS=${JSON.stringify(env.BUILD_POLL_INTERVAL_SECONDS)} is not allowed: must be a number > 0 (seconds; default ${fallback})`);
    return fallback;
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

  const maxAttempts = readSetting(env, "CODEBUILD_MAX_RETRIES", "attempts to start the build", problems);
  const retryDelaySeconds = readSetting(env, "CODEBUILD_RETRY_DELAY_SECONDS", "seconds between attempts", problems);
  const timeoutMinutes = readSetting(env, "CODEBUILD_TIMEOUT_MINUTES", "minutes", problems);
  const pollSeconds = readPollSeconds(env, problems);

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
