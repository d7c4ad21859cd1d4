// One run of the build runner: stop leftover builds, start a build, follow it, retry a build denied
// access before its first command while attempts remain, and report the outcome.

import type { Fail, RunnerDeps, RunResult } from "./deps";
import { follow } from "./follow";
import type { RunnerOptions } from "./options";
import { earlyAccessDenial, finish } from "./outcome";
import { startBuild, stopLeftoverBuilds } from "./start";

/**
 * Starts the CodeBuild project, follows the build and reports its outcome (see the comment of
 * infra/build-runner.ts).
 *
 * @param options - validated parameters (parseRunnerEnv, options.ts).
 * @param deps - AWS clients, clock, sleep, output and the interrupt signal.
 * @returns the exit code (see EXIT_CODES, exit-codes.ts) and, on success, the build id and digest.
 */
export async function runBuild(options: RunnerOptions, deps: RunnerDeps): Promise<RunResult> {
  const { out, signal } = deps;
  const fail: Fail = (message) => {
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
