// The build runner that `knock-lambda-build-run` (@pulumi/command local.Command) executes:
//
//   node --import tsx infra/build-runner.ts
//
// It starts the CodeBuild project, follows the build, and on success ends its stdout with the pushed
// image digest, which the Pulumi program turns into the function's image URI. It needs Node only —
// no AWS CLI, bash or jq on the deployer's machine, as the original needed — and takes every parameter from
// the environment, so nothing is ever spliced into a shell line. The digest travels through this
// process's own stdout, never a shared temp file, and there is no fallback tag (the original
// shared a temp file between stacks and fell back to `:latest`).
//
// Importing this module has no side effects: tests and index.ts use its pure helpers.
//
// What a cancelled `pulumi up` does to this process (read from the sources of @pulumi/command 1.2.1,
// pulumi-go-provider 1.3.0 and pulumi/pulumi 3.259.0):
// - The first Ctrl-C (or SIGTERM) makes the engine cancel the deployment and send the Cancel RPC to
//   every provider (pulumi `pkg/resource/deploy/deployment_executor.go`: SignalCancellation when the
//   caller context is done). pulumi-go-provider's `middleware/cancel` answers it by cancelling the
//   context of every operation in flight, and pulumi-command runs this process with
//   `exec.CommandContext(ctx, "node", …)` (`provider/pkg/provider/local/commandOutputs.go`) without a
//   custom `Cancel`, so Go's os/exec kills it with SIGKILL at once. No handler runs, so the build is
//   left running until CodeBuild's own timeout (codebuild_timeout_minutes + 5).
// - The terminal's SIGINT never reaches us: plugins are started in their own process group
//   (pulumi `sdk/go/common/util/cmdutil/child_unix.go`, RegisterProcessGroup), and we are in the
//   provider's group, not the CLI's.
// - A second Ctrl-C only closes the plugins (SIGINT to the provider's process group, SIGKILL 5 s
//   later: pulumi `pkg/resource/plugin/plugin.go`); by then this process is already gone.
// - `customTimeouts` on the command would cancel the same context, with the same SIGKILL.
// So the SIGINT/SIGTERM handling below serves runs by hand and any future provider that signals
// before it kills; what protects `pulumi up` is stopLeftoverBuilds, run before every new build.

import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import {
  BatchGetBuildsCommand,
  BatchGetProjectsCommand,
  CodeBuildClient,
  ListBuildsForProjectCommand,
  StartBuildCommand,
  StopBuildCommand,
  type Build,
  type BuildPhase,
} from "@aws-sdk/client-codebuild";
import { CloudWatchLogsClient, GetLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";

import { DIGEST_VARIABLE } from "./buildspec";

/** Name of the variable the buildspec exports (`env.exported-variables`) with the pushed digest. */
export { DIGEST_VARIABLE };

// The output format is shared with the Pulumi program, which parses it without loading the AWS SDK.
import { DIGEST_PATTERN, parseRunnerOutput } from "./runner-output";

export { DIGEST_PATTERN, parseRunnerOutput };

/** Exit codes of the runner; index.ts and the README rely on them. */
export const EXIT_CODES = Object.freeze({
  /** Build succeeded; the last stdout line is the digest. */
  success: 0,
  /** The build could not be started, failed, or succeeded without a valid digest. */
  failure: 1,
  /** An environment variable was missing or invalid. */
  invalidEnvironment: 2,
  /** The build ran longer than CODEBUILD_TIMEOUT_MINUTES and was stopped (same code as coreutils `timeout`). */
  timeout: 124,
  /** Interrupted by SIGINT (128 + 2). */
  sigint: 130,
  /** Interrupted by SIGTERM (128 + 15). */
  sigterm: 143,
});

/** Lines printed from the end of the CloudWatch build log when a build fails. */
export const LOG_TAIL_LINES = 30;

/** While the phase does not change, a "still running" line is printed this often, so a slow BUILD phase does not look hung. */
export const HEARTBEAT_MS = 30_000;

/** Consecutive BatchGetBuilds failures tolerated (the SDK has already retried each one) before giving up on the build. */
export const MAX_POLL_FAILURES = 5;

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

type Env = Readonly<Record<string, string | undefined>>;

interface NumberRule {
  readonly name: string;
  readonly fallback: number;
  readonly integer: boolean;
  readonly min: number;
  /** `true`: the value must be strictly greater than `min`. */
  readonly exclusive: boolean;
  readonly unit: string;
}

function readNumber(env: Env, rule: NumberRule, problems: string[]): number {
  const raw = env[rule.name]?.trim();
  // An empty variable counts as unset: the Pulumi program may pass "" for an unset config key.
  if (raw === undefined || raw === "") return rule.fallback;
  const syntax = rule.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  const value = Number(raw);
  const inRange = rule.exclusive ? value > rule.min : value >= rule.min;
  if (!syntax.test(raw) || !Number.isFinite(value) || !inRange) {
    const kind = rule.integer ? "a whole number" : "a number";
    const bound = `${rule.exclusive ? ">" : "≥"} ${rule.min}`;
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

  const maxAttempts = readNumber(
    env,
    { name: "CODEBUILD_MAX_RETRIES", fallback: 10, integer: true, min: 1, exclusive: false, unit: "attempts to start the build" },
    problems,
  );
  const retryDelaySeconds = readNumber(
    env,
    { name: "CODEBUILD_RETRY_DELAY_SECONDS", fallback: 30, integer: false, min: 0, exclusive: false, unit: "seconds between attempts" },
    problems,
  );
  const timeoutMinutes = readNumber(
    env,
    { name: "CODEBUILD_TIMEOUT_MINUTES", fallback: 30, integer: false, min: 0, exclusive: true, unit: "minutes" },
    problems,
  );
  const pollSeconds = readNumber(
    env,
    { name: "BUILD_POLL_INTERVAL_SECONDS", fallback: 5, integer: false, min: 0, exclusive: true, unit: "seconds" },
    problems,
  );

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

// CodeBuild's compute type values are upper-case enum names (BUILD_GENERAL1_*, BUILD_LAMBDA_*, ATTRIBUTE_BASED_COMPUTE, …).
const COMPUTE_TYPE_PATTERN = /^[A-Z][A-Z0-9_]{1,63}$/;

/**
 * Formats a duration as the runner's progress prefix, e.g. `[2m05s]`.
 *
 * @param ms - elapsed milliseconds (negative values count as 0).
 */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `[${minutes}m${String(seconds).padStart(2, "0")}s]`;
}

function errorName(err: unknown): string {
  if (err && typeof err === "object") {
    const { name, Code } = err as { name?: unknown; Code?: unknown };
    if (typeof name === "string" && name !== "Error") return name;
    if (typeof Code === "string") return Code;
    if (typeof name === "string") return name;
  }
  return "Error";
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function describeError(err: unknown): string {
  return `${errorName(err)}: ${errorMessage(err)}`;
}

/**
 * Whether a StartBuild error means CodeBuild cannot assume the project's service role *yet*.
 *
 * A freshly created IAM role takes a while to become assumable everywhere; meanwhile StartBuild fails
 * with `InvalidInputException: CodeBuild is not authorized to perform: sts:AssumeRole on
 * arn:aws:iam::…:role/…` (some paths report it as AccessDenied). Only that case is worth retrying;
 * everything else (missing project, no codebuild:StartBuild permission for the caller, account
 * limits) fails the same way on every attempt.
 */
export function isRolePropagationError(err: unknown): boolean {
  const name = errorName(err);
  const retryableName = name === "InvalidInputException" || /^AccessDenied(Exception)?$/.test(name);
  return retryableName && /not authorized to perform:?\s*sts:AssumeRole/i.test(errorMessage(err));
}

/** A Service Quotas quota on concurrently running CodeBuild builds. */
export interface ConcurrentBuildQuota {
  /** Its name in Service Quotas, e.g. `Concurrently running builds for Linux/Medium environment`. */
  readonly name: string;
  /** The `<platform>/<size>` the quota is for, e.g. `Linux/Medium`. */
  readonly environment: string;
  /** Its quota code, where public sources agree on it. */
  readonly code?: string;
}

// Service Quotas names one concurrent-build quota per platform and size, "Concurrently running builds
// for <platform>/<size> environment" (CodeBuild User Guide, "Quotas for AWS CodeBuild").
const QUOTA_PLATFORMS: Readonly<Record<EnvironmentType, string>> = { LINUX_CONTAINER: "Linux", ARM_CONTAINER: "ARM" };
const QUOTA_SIZES: Readonly<Record<string, string>> = {
  BUILD_GENERAL1_SMALL: "Small",
  BUILD_GENERAL1_MEDIUM: "Medium",
  BUILD_GENERAL1_LARGE: "Large",
  BUILD_GENERAL1_XLARGE: "XLarge",
  BUILD_GENERAL1_2XLARGE: "2XLarge",
};
// AWS's quotas page lists names, not codes. These codes are the ones at least two public sources give
// for the same name: AWS's Landing Zone Accelerator (L-2DC20C30 Linux/Medium, L-4DDC4A99 Linux/Large;
// its issue 361), an AWS workshop (L-9D07B6EF Linux/Small) and published `list-service-quotas`
// listings. ARM/Medium, ARM/XLarge and ARM/2XLarge have a single source, so the runner tells the user
// how to look their code up instead of printing one that may be wrong.
const QUOTA_CODES: Readonly<Record<string, string>> = {
  "Linux/Small": "L-9D07B6EF",
  "Linux/Medium": "L-2DC20C30",
  "Linux/Large": "L-4DDC4A99",
  "Linux/XLarge": "L-04E5CA62",
  "Linux/2XLarge": "L-0397D009",
  "ARM/Small": "L-5ED1D25B",
  "ARM/Large": "L-596BEAB4",
};

/**
 * The concurrent-build quota that applies to a project, from its environment type and compute type.
 *
 * @returns undefined when either is unknown, or the compute type has no `<platform>/<size>` quota the
 *   runner knows (e.g. Lambda compute, reserved fleets).
 */
export function concurrentBuildQuota(environmentType?: string, computeType?: string): ConcurrentBuildQuota | undefined {
  const platform = QUOTA_PLATFORMS[environmentType as EnvironmentType] as string | undefined;
  const size = computeType === undefined ? undefined : QUOTA_SIZES[computeType];
  if (platform === undefined || size === undefined) return undefined;
  const key = `${platform}/${size}`;
  const code = QUOTA_CODES[key];
  return { name: `Concurrently running builds for ${key} environment`, environment: key, ...(code ? { code } : {}) };
}

interface BuildEnvironment {
  readonly environmentType?: string;
  readonly computeType?: string;
}

/** The project's environment: from the runner's variables, else from the project itself; never throws. */
async function projectEnvironment(options: RunnerOptions, deps: RunnerDeps): Promise<BuildEnvironment> {
  if (options.environmentType && options.computeType) return options;
  try {
    // The deployer can read the project: the Pulumi AWS provider reads it the same way.
    const got = await deps.codebuild.send(new BatchGetProjectsCommand({ names: [options.projectName] }));
    const environment = got.projects?.find((p) => p.name === options.projectName)?.environment;
    return {
      environmentType: options.environmentType ?? environment?.type,
      computeType: options.computeType ?? environment?.computeType,
    };
  } catch {
    return options;
  }
}

/**
 * The message for a StartBuild that CodeBuild refused with AccountLimitExceededException, or undefined
 * for any other error.
 *
 * CodeBuild answers `Cannot have more than N builds in queue for the account` (also seen as "N active
 * builds"). N is 0 when the account's concurrent-build quota for the compute type is 0, as it often is
 * on new accounts (reported e.g. in aws-ia/terraform-aws-control_tower_account_factory issues 100 and
 * 179): no build can ever start until the quota is raised. With N > 0 the slots exist but other builds
 * hold them all (a project without its own concurrency limit may queue five times the quota; CodeBuild
 * User Guide, "Builds in AWS CodeBuild").
 */
export async function accountLimitMessage(err: unknown, options: RunnerOptions, deps: RunnerDeps): Promise<string | undefined> {
  if (errorName(err) !== "AccountLimitExceededException") return undefined;
  const { environmentType, computeType } = await projectEnvironment(options, deps);
  const quota = concurrentBuildQuota(environmentType, computeType);
  const region = options.region;
  const subject = quota
    ? `for ${quota.environment} (${computeType} on ${environmentType})`
    : "for this project's compute type";
  const quotaName = quota
    ? `"${quota.name}"`
    : `the "Concurrently running builds for <Linux|ARM>/<size> environment" quota that matches codebuild_compute_type and lambda_architecture`;
  const cli = quota?.code
    ? `aws service-quotas request-service-quota-increase --region ${region} --service-code codebuild --quota-code ${quota.code} --desired-value 2`
    : `aws service-quotas list-service-quotas --region ${region} --service-code codebuild (to find its quota code), then aws service-quotas request-service-quota-increase --region ${region} --service-code codebuild --quota-code <code> --desired-value 2`;
  const nothingDeployed = "No build ran and nothing was deployed (the function was not created or changed)";

  const limit = /Cannot have more than (\d+) (?:active )?builds?/i.exec(errorMessage(err));
  if (limit?.[1] === "0") {
    return (
      `CodeBuild will not start any build of ${options.projectName}: ${describeError(err)}. ` +
      `This AWS account's quota of concurrently running CodeBuild builds ${subject} is 0 in ${region}, as it often is on new accounts. ` +
      `Raise it in the Service Quotas console (AWS services → AWS CodeBuild → ${quotaName} → Request increase at account level; ` +
      `2 is plenty, this stack runs one build at a time) or with: ${cli}. ` +
      `If the quota already shows more than 0, ask AWS Support to lift the account's CodeBuild limit. ` +
      `${nothingDeployed}; run pulumi up again once the increase is approved.`
    );
  }
  if (limit) {
    return (
      `CodeBuild will not queue another build of ${options.projectName}: ${describeError(err)}. ` +
      `Other builds in this account hold every slot of its concurrent-build quota ${subject} in ${region}. ` +
      `Wait for them to finish, or stop the ones you do not need (CodeBuild console → Build history), then run pulumi up again; ` +
      `to run more at once, raise ${quotaName} in Service Quotas (AWS services → AWS CodeBuild). ${nothingDeployed}.`
    );
  }
  return (
    `CodeBuild refused to start a build of ${options.projectName} because of an account limit: ${describeError(err)}. ` +
    `If it is about builds, it is the account's concurrent-build quota ${subject} in ${region}: raise ${quotaName} ` +
    `in Service Quotas (AWS services → AWS CodeBuild), or with: ${cli}. ${nothingDeployed}.`
  );
}

// Phases before any buildspec command runs: a failure there is about access and setup, not the build.
const EARLY_PHASES = new Set(["QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE"]);

/** The first phase that did not succeed, if any. */
function failedPhase(build: Build): BuildPhase | undefined {
  return (build.phases ?? []).find((p) => p.phaseStatus !== undefined && p.phaseStatus !== "SUCCEEDED");
}

/**
 * Whether a build failed before its first command because the service role was denied access — which,
 * on a fresh deploy, is the role's new policy not having reached CodeBuild yet.
 *
 * Shapes seen in public reports: `ACCESS_DENIED` "Service role … does not allow AWS CodeBuild to create
 * Amazon CloudWatch Logs log streams for build …" in QUEUED (older builds: PROVISIONING) — retried as
 * IAM propagation by tmokmss/deploy-time-build (issue 72) and by published start-build scripts — and
 * `CLIENT_ERROR` "AccessDenied: Access Denied status code: 403, request id: …, host id: … for primary
 * source …" in DOWNLOAD_SOURCE when the role cannot yet read the S3 source object.
 *
 * @returns the failing phase and CodeBuild's reason, or undefined when the build failed any other way.
 */
export function earlyAccessDenial(build: Build): { readonly phase: string; readonly reason: string } | undefined {
  if (build.buildStatus !== "FAILED" && build.buildStatus !== "FAULT") return undefined;
  const failed = failedPhase(build);
  const phase = failed?.phaseType;
  if (phase === undefined || !EARLY_PHASES.has(phase)) return undefined;
  for (const context of failed?.contexts ?? []) {
    const code = context.statusCode ?? "";
    const message = context.message ?? "";
    const denied =
      code === "ACCESS_DENIED" ||
      (code === "CLIENT_ERROR" && /\bAccessDenied\b|\bAccess Denied\b|not authorized to perform/i.test(message));
    if (denied) return { phase, reason: `${code}: ${message}` };
  }
  return undefined;
}

/** Everything {@link runBuild} touches outside itself, so tests can drive it with mocks and a fake clock. */
export interface RunnerDeps {
  readonly codebuild: CodeBuildClient;
  readonly logs: CloudWatchLogsClient;
  /** Waits `ms`; should return early (not throw) when `signal` aborts. */
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Milliseconds on a monotonic-enough clock. */
  readonly now: () => number;
  /** Prints one line to stdout (the stream local.Command shows live and returns). */
  readonly out: (line: string) => void;
  /** Also receives the final error summary (stderr), so it shows in Pulumi's error message. */
  readonly err?: (line: string) => void;
  /** Aborted on SIGINT/SIGTERM; its reason (`"SIGINT"`/`"SIGTERM"`) picks the exit code. */
  readonly signal?: AbortSignal;
}

/** What {@link runBuild} ended with. */
export interface RunResult {
  readonly exitCode: number;
  readonly buildId?: string;
  readonly digest?: string;
}

/** Sleeps `ms`, returning early when `signal` aborts. The default {@link RunnerDeps.sleep}. */
export async function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
}

function signalExitCode(signal: AbortSignal): number {
  return signal.reason === "SIGTERM" ? EXIT_CODES.sigterm : EXIT_CODES.sigint;
}

function signalName(signal: AbortSignal): string {
  return typeof signal.reason === "string" ? signal.reason : "an interrupt";
}

const ABORTED = Symbol("aborted");

/** Resolves with `promise`'s value, or with ABORTED as soon as `signal` aborts (the call itself is left to finish). */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.resolve(ABORTED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

const TERMINAL_FAILURES = new Set(["FAILED", "FAULT", "STOPPED", "TIMED_OUT"]);

/** Most builds {@link stopLeftoverBuilds} looks at: one ListBuildsForProject page, newest first, is one BatchGetBuilds call. */
const LEFTOVER_SCAN = 100;

/**
 * Stops builds of this project that are still IN_PROGRESS before a new one starts. Never throws.
 *
 * A cancelled `pulumi up` kills the runner with SIGKILL (see the module comment), which leaves its
 * build running — on an account whose quota is one build, ahead of the new build in the queue. Such a
 * build can only come from an earlier run: the project belongs to this stack alone, and Pulumi locks
 * the stack for the whole update, so no other runner can be following it. Its result would never be
 * used either, since this run starts a fresh build.
 */
export async function stopLeftoverBuilds(options: RunnerOptions, deps: RunnerDeps): Promise<readonly string[]> {
  const { out } = deps;
  const stopped: string[] = [];
  let running: Build[];
  try {
    const listed = await deps.codebuild.send(
      new ListBuildsForProjectCommand({ projectName: options.projectName, sortOrder: "DESCENDING" }),
    );
    const ids = (listed.ids ?? []).slice(0, LEFTOVER_SCAN);
    if (ids.length === 0) return stopped;
    const got = await deps.codebuild.send(new BatchGetBuildsCommand({ ids }));
    running = (got.builds ?? []).filter((b) => b.buildStatus === "IN_PROGRESS" && b.id !== undefined);
  } catch (err) {
    // Checking is a courtesy: a deployer without codebuild:ListBuildsForProject can still deploy.
    out(`note: could not look for builds an earlier, cancelled run left running (${describeError(err)}); carrying on`);
    return stopped;
  }
  for (const build of running) {
    const id = build.id as string;
    const since = build.startTime ? ` since ${build.startTime.toISOString()}` : "";
    out(`stopping build ${id} (running${since}): an earlier run of this stack was cancelled or killed and left it behind`);
    try {
      await deps.codebuild.send(new StopBuildCommand({ id }));
      stopped.push(id);
    } catch (err) {
      out(`could not stop ${id} (${describeError(err)}); stop it in the CodeBuild console if it is still running`);
    }
  }
  return stopped;
}

type Step<T> = { readonly value: T } | { readonly result: RunResult };

/**
 * Starts the CodeBuild project, follows the build and reports its outcome (see the module comment).
 *
 * @param options - validated parameters ({@link parseRunnerEnv}).
 * @param deps - AWS clients, clock, sleep, output and the interrupt signal.
 * @returns the exit code (see {@link EXIT_CODES}) and, on success, the build id and digest.
 */
export async function runBuild(options: RunnerOptions, deps: RunnerDeps): Promise<RunResult> {
  const { out, signal } = deps;
  const fail = (message: string): void => {
    out(`error: ${message}`);
    deps.err?.(`error: ${message}`);
  };

  out(`starting CodeBuild project ${options.projectName} in ${options.region}`);
  if (options.contextSha256) out(`build context sha256: ${options.contextSha256}`);
  await stopLeftoverBuilds(options, deps);

  // One budget of attempts covers both ways a fresh role shows it has not propagated: StartBuild
  // refusing to assume it, and a started build denied access before its first command.
  let attempts = 0;
  let previousBuild: string | undefined;
  for (;;) {
    const started = await startBuild(options, deps, fail, attempts, previousBuild);
    if ("result" in started) return started.result;
    const buildId = started.value.buildId;
    attempts = started.value.attempts;

    const followed = await follow(options, deps, fail, buildId);
    if ("result" in followed) return followed.result;
    const { build, elapsed } = followed.value;

    const denial = earlyAccessDenial(build);
    if (denial && attempts < options.maxAttempts && !signal?.aborted) {
      const reason = denial.reason.length > 160 ? `${denial.reason.slice(0, 160)}…` : denial.reason;
      out(
        `attempt ${attempts}/${options.maxAttempts}: build ${buildId} was denied access in ${denial.phase} (${reason}); ` +
          `the new service role policy may not have reached CodeBuild yet (IAM propagation); starting a new build in ${options.retryDelayMs / 1000}s`,
      );
      previousBuild = buildId;
      await deps.sleep(options.retryDelayMs, signal);
      continue;
    }
    return finish(build, buildId, elapsed, deps, fail, denial ? attempts : undefined);
  }
}

/** StartBuild, retried while the fresh service role is not assumable yet; `attempts` counts every StartBuild of this run. */
async function startBuild(
  options: RunnerOptions,
  deps: RunnerDeps,
  fail: (message: string) => void,
  attemptsSoFar: number,
  previousBuild: string | undefined,
): Promise<Step<{ buildId: string; attempts: number }>> {
  const { out, signal } = deps;
  let lastError: unknown;
  for (let attempt = attemptsSoFar + 1; attempt <= options.maxAttempts; attempt++) {
    if (signal?.aborted) {
      fail(
        previousBuild
          ? `received ${signalName(signal)} before a new build started (build ${previousBuild} had already failed); nothing to stop`
          : `received ${signalName(signal)} before a build started; nothing to stop`,
      );
      return { result: { exitCode: signalExitCode(signal) } };
    }
    try {
      // The StartBuild call is not raced against the signal: if it succeeds we must know the id to stop it.
      const started = await deps.codebuild.send(
        // One token per attempt: the SDK's own retries of this request then cannot start a second build.
        new StartBuildCommand({ projectName: options.projectName, idempotencyToken: randomUUID() }),
      );
      const buildId = started.build?.id;
      if (!buildId) {
        fail(`StartBuild for ${options.projectName} returned no build id; check the project in the CodeBuild console`);
        return { result: { exitCode: EXIT_CODES.failure } };
      }
      out(`started build ${buildId}`);
      return { value: { buildId, attempts: attempt } };
    } catch (err) {
      lastError = err;
      // Checked first: an account limit never clears by waiting 30 s, whatever its message says.
      const limit = await accountLimitMessage(err, options, deps);
      if (limit !== undefined) {
        fail(limit);
        return { result: { exitCode: EXIT_CODES.failure } };
      }
      if (!isRolePropagationError(err)) {
        fail(`could not start a build of ${options.projectName}: ${describeError(err)}`);
        return { result: { exitCode: EXIT_CODES.failure } };
      }
      if (attempt < options.maxAttempts) {
        out(
          `attempt ${attempt}/${options.maxAttempts}: CodeBuild cannot assume its service role yet (IAM propagation); retrying in ${options.retryDelayMs / 1000}s`,
        );
        await deps.sleep(options.retryDelayMs, signal);
      }
    }
  }
  fail(
    `gave up starting a build of ${options.projectName} after ${options.maxAttempts} attempt(s), ${options.retryDelayMs / 1000}s apart: ` +
      `CodeBuild still cannot assume its service role. Last error: ${describeError(lastError)}. ` +
      `Check that the role's trust policy allows codebuild.amazonaws.com and that STS is enabled in ${options.region}; ` +
      `if IAM is just slow, raise codebuild_max_retries or codebuild_retry_delay and run pulumi up again.`,
  );
  return { result: { exitCode: EXIT_CODES.failure } };
}

/** Follows one build until it ends (value), or until the timeout, a signal or lost polls end the run (result). */
async function follow(
  options: RunnerOptions,
  deps: RunnerDeps,
  fail: (message: string) => void,
  buildId: string,
): Promise<Step<{ build: Build; elapsed: string }>> {
  const { out, signal } = deps;
  const startedAt = deps.now();
  const elapsed = (): string => formatElapsed(deps.now() - startedAt);

  const stop = async (reason: string): Promise<void> => {
    out(`${elapsed()} ${reason}: stopping build ${buildId}`);
    try {
      await deps.codebuild.send(new StopBuildCommand({ id: buildId }));
      out(`${elapsed()} StopBuild accepted for ${buildId}`);
    } catch (err) {
      out(`${elapsed()} StopBuild failed (${describeError(err)}); stop ${buildId} in the CodeBuild console`);
    }
  };

  let lastPhase: string | undefined;
  let lastLineAt = startedAt;
  let logLinkShown = false;
  let pollFailures = 0;
  for (;;) {
    if (signal?.aborted) {
      await stop(`received ${signalName(signal)}`);
      out(`build id: ${buildId}`);
      fail(`interrupted by ${signalName(signal)}; build ${buildId} was asked to stop`);
      return { result: { exitCode: signalExitCode(signal), buildId } };
    }

    let build: Build | undefined;
    try {
      const polled = await unlessAborted(deps.codebuild.send(new BatchGetBuildsCommand({ ids: [buildId] })), signal);
      if (polled === ABORTED) continue;
      build = polled.builds?.find((b) => b.id === buildId);
      if (!build) throw new Error(`BatchGetBuilds did not return build ${buildId}`);
      pollFailures = 0;
    } catch (err) {
      pollFailures++;
      out(`${elapsed()} could not read the build status (${pollFailures}/${MAX_POLL_FAILURES}): ${describeError(err)}`);
      if (pollFailures >= MAX_POLL_FAILURES) {
        await stop("lost track of the build");
        out(`build id: ${buildId}`);
        fail(`could not read the status of build ${buildId} ${MAX_POLL_FAILURES} times in a row; last error: ${describeError(err)}`);
        return { result: { exitCode: EXIT_CODES.failure, buildId } };
      }
    }

    if (build) {
      const deepLink = build.logs?.deepLink;
      if (deepLink && !logLinkShown) {
        out(`${elapsed()} logs: ${deepLink}`);
        logLinkShown = true;
      }
      const status = build.buildStatus;
      if (status !== undefined && status !== "IN_PROGRESS") return { value: { build, elapsed: elapsed() } };
      const phase = build.currentPhase ?? "SUBMITTED";
      const now = deps.now();
      if (phase !== lastPhase) {
        out(`${elapsed()} phase ${phase}`);
        lastPhase = phase;
        lastLineAt = now;
      } else if (now - lastLineAt >= HEARTBEAT_MS) {
        out(`${elapsed()} phase ${phase} (still running)`);
        lastLineAt = now;
      }
    }

    const remaining = options.timeoutMs - (deps.now() - startedAt);
    if (remaining <= 0) {
      await stop(`timed out after ${options.timeoutMs / 60_000} min (CODEBUILD_TIMEOUT_MINUTES)`);
      out(`build id: ${buildId}`);
      fail(
        `build ${buildId} did not finish within ${options.timeoutMs / 60_000} min and was stopped; ` +
          `raise codebuild_timeout_minutes if the build is just slow`,
      );
      return { result: { exitCode: EXIT_CODES.timeout, buildId } };
    }
    await deps.sleep(Math.min(options.pollIntervalMs, remaining), signal);
  }
}

async function finish(
  build: Build,
  buildId: string,
  elapsed: string,
  deps: RunnerDeps,
  fail: (message: string) => void,
  deniedAfterAttempts: number | undefined,
): Promise<RunResult> {
  const { out } = deps;
  const status = build.buildStatus ?? "UNKNOWN";
  // Printed once, for the build this run ends with: a build retried after an early denial never
  // produced the image, so only this id may become codebuild_run_id.
  out(`build id: ${buildId}`);

  if (status === "SUCCEEDED") {
    const exported = build.exportedEnvironmentVariables ?? [];
    const digest = exported.find((v) => v.name === DIGEST_VARIABLE)?.value?.trim();
    if (digest === undefined || digest === "") {
      const names = exported.map((v) => v.name).join(", ") || "none";
      fail(
        `build ${buildId} succeeded but did not export ${DIGEST_VARIABLE} (exported: ${names}); ` +
          `the buildspec must export the pushed digest. No digest, no deploy.`,
      );
      return { exitCode: EXIT_CODES.failure, buildId };
    }
    if (!DIGEST_PATTERN.test(digest)) {
      fail(
        `build ${buildId} succeeded but exported ${DIGEST_VARIABLE}=${JSON.stringify(digest.slice(0, 100))}, ` +
          `which is not an image digest (sha256:<64 lowercase hex>). No digest, no deploy.`,
      );
      return { exitCode: EXIT_CODES.failure, buildId };
    }
    out(`${elapsed} build SUCCEEDED`);
    // Must stay the last stdout line: parseRunnerOutput (and index.ts) read it from there.
    out(digest);
    return { exitCode: EXIT_CODES.success, buildId, digest };
  }

  out(`${elapsed} build ${status}`);
  const failed = failedPhase(build);
  if (failed) {
    out(`failing phase: ${failed.phaseType ?? "UNKNOWN"} ${failed.phaseStatus}`);
    for (const context of failed.contexts ?? []) {
      const parts = [context.statusCode, context.message].filter((s) => s !== undefined && s !== "");
      if (parts.length > 0) out(`  ${parts.join(": ")}`);
    }
  } else {
    out(`no phase reported a failure (last phase: ${build.currentPhase ?? "unknown"})`);
  }
  if (build.logs?.deepLink) out(`logs: ${build.logs.deepLink}`);
  for (const line of await logTail(build, deps)) out(line);

  const phaseText = failed ? ` in phase ${failed.phaseType ?? "UNKNOWN"}` : "";
  const hint = TERMINAL_FAILURES.has(status) ? "" : " (unexpected status)";
  const denied =
    deniedAfterAttempts === undefined
      ? ""
      : `; still denied access after ${deniedAfterAttempts} attempt(s), so IAM propagation is not the cause: check that the codebuild-policy ` +
        `role policy grants s3:GetObject on the build context object and logs:CreateLogStream/PutLogEvents on the build's log group, ` +
        `and that no bucket policy, KMS key policy or SCP denies them`;
  fail(`build ${buildId} ended ${status}${phaseText}${hint}${denied}; see the log above`);
  return { exitCode: EXIT_CODES.failure, buildId };
}

/** The last {@link LOG_TAIL_LINES} lines of the build's CloudWatch log, framed; never throws. */
async function logTail(build: Build, deps: RunnerDeps): Promise<string[]> {
  const group = build.logs?.groupName;
  const stream = build.logs?.streamName;
  if (!group || !stream) return ["(no CloudWatch log recorded for this build)"];
  try {
    const page = await deps.logs.send(
      new GetLogEventsCommand({ logGroupName: group, logStreamName: stream, startFromHead: false, limit: LOG_TAIL_LINES }),
    );
    // Sorted defensively: the API documents the newest-first *selection*, not the order within a page.
    const events = [...(page.events ?? [])].sort((a, b) => (a.timestamp ?? 0) - (b.timestamp ?? 0));
    const lines = events.flatMap((e) => (e.message ?? "").replace(/\s+$/, "").split(/\r?\n/)).slice(-LOG_TAIL_LINES);
    if (lines.length === 0) return [`(the build log ${group}/${stream} is empty so far)`];
    return [`--- last ${lines.length} log lines (${group}) ---`, ...lines, "--- end of log ---"];
  } catch (err) {
    return [`(could not read the build log ${group}/${stream}: ${describeError(err)})`];
  }
}

/**
 * Entry point: reads the environment, wires SIGINT/SIGTERM to a graceful StopBuild and runs the build.
 *
 * @returns the process exit code.
 */
export async function main(env: Env = process.env): Promise<number> {
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const err = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };

  let options: RunnerOptions;
  try {
    options = parseRunnerEnv(env);
  } catch (e) {
    if (!(e instanceof RunnerConfigError)) throw e;
    out(`error: ${e.message}`);
    err(`error: ${e.message}`);
    return EXIT_CODES.invalidEnvironment;
  }

  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      controller.abort(name);
      return;
    }
    // A second signal means "now": give up waiting for StopBuild.
    out(`received ${name} again; exiting without waiting for StopBuild`);
    process.exit(name === "SIGTERM" ? EXIT_CODES.sigterm : EXIT_CODES.sigint);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  // Endpoints are left to the SDK, so AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> keep working.
  // Timeouts are set because the SDK has none by default: a hung connection would otherwise
  // outlive CODEBUILD_TIMEOUT_MINUTES.
  const requestHandler = { connectionTimeout: 10_000, requestTimeout: 60_000, throwOnRequestTimeout: true };
  const codebuild = new CodeBuildClient({ region: options.region, requestHandler });
  const logs = new CloudWatchLogsClient({ region: options.region, requestHandler });
  try {
    const result = await runBuild(options, {
      codebuild,
      logs,
      sleep: abortableSleep,
      now: () => performance.now(),
      out,
      err,
      signal: controller.signal,
    });
    return result.exitCode;
  } finally {
    codebuild.destroy();
    logs.destroy();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// `require` is undefined when a test runner loads this file as an ES module; only run when executed.
if (typeof require !== "undefined" && require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      const message = `error: build runner crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      process.stdout.write(`${message}\n`);
      process.stderr.write(`${message}\n`);
      process.exitCode = EXIT_CODES.failure;
    },
  );
}
