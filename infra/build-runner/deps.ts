// The runner's port to the outside world: what runBuild (run.ts) is handed and returns, the production
// sleep and AWS clients, and how the interrupt signal maps to a name and an exit code.

import { setTimeout as delay } from "node:timers/promises";
import { CodeBuildClient } from "@aws-sdk/client-codebuild";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";

import { EXIT_CODES } from "./exit-codes";

/** Everything runBuild (run.ts) touches outside itself, so tests can drive it with mocks and a fake clock. */
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

/** What runBuild (run.ts) ended with. */
export interface RunResult {
  readonly exitCode: number;
  readonly buildId?: string;
  readonly digest?: string;
}

/** One stage of a run: its value for the next stage, or the result that ends the run. */
export type Step<T> = { readonly value: T } | { readonly result: RunResult };

/** Prints the final `error: …` line, to stdout and to {@link RunnerDeps.err}. */
export type Fail = (message: string) => void;

/** Sleeps `ms`, returning early when `signal` aborts. The default {@link RunnerDeps.sleep}. */
export async function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
}

/** The production CodeBuild and CloudWatch Logs clients for `region`; the caller destroys them. */
export function createAwsClients(region: string): Pick<RunnerDeps, "codebuild" | "logs"> {
  // Endpoints are left to the SDK, so AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> keep working.
  // Timeouts are set because the SDK has none by default: a hung connection would otherwise
  // outlive CODEBUILD_TIMEOUT_MINUTES.
  const requestHandler = { connectionTimeout: 10_000, requestTimeout: 60_000, throwOnRequestTimeout: true };
  const codebuild = new CodeBuildClient({ region, requestHandler });
  const logs = new CloudWatchLogsClient({ region, requestHandler });
  return { codebuild, logs };
}

/** The exit code for the signal that aborted the run. */
export function signalExitCode(signal: AbortSignal): number {
  return signal.reason === "SIGTERM" ? EXIT_CODES.sigterm : EXIT_CODES.sigint;
}

/** The signal's name as the runner prints it. */
export function signalName(signal: AbortSignal): string {
  return typeof signal.reason === "string" ? signal.reason : "an interrupt";
}
