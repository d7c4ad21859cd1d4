// Following one started build: polling its status, printing phase changes and a heartbeat, and stopping
// it on the timeout, on a signal, or when its status can no longer be read.

import { BatchGetBuildsCommand, StopBuildCommand, type Build } from "@aws-sdk/client-codebuild";

import { signalExitCode, signalName, type Fail, type RunnerDeps, type Step } from "./deps";
import { describeError } from "./errors";
import { EXIT_CODES } from "./exit-codes";
import type { RunnerOptions } from "./options";

/** While the phase does not change, a "still running" line is printed this often, so a slow BUILD phase does not look hung. */
export const HEARTBEAT_MS = 30_000;

/** Consecutive BatchGetBuilds failures tolerated (the SDK has already retried each one) before giving up on the build. */
export const MAX_POLL_FAILURES = 5;

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

/** Follows one build until it ends (value), or until the timeout, a signal or lost polls end the run (result). */
export async function follow(
  options: RunnerOptions,
  deps: RunnerDeps,
  fail: Fail,
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
