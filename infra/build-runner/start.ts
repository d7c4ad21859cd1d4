// Starting a build: first stopping builds an earlier, cancelled run left running, then StartBuild,
// retried while the fresh service role is not assumable yet.

import { randomUUID } from "node:crypto";
import {
  BatchGetBuildsCommand,
  ListBuildsForProjectCommand,
  StartBuildCommand,
  StopBuildCommand,
  type Build,
} from "@aws-sdk/client-codebuild";

import { signalExitCode, signalName, type Fail, type RunnerDeps, type Step } from "./deps";
import { describeError, isRolePropagationError } from "./errors";
import { EXIT_CODES } from "./exit-codes";
import type { RunnerOptions } from "./options";
import { accountLimitMessage } from "./quota";

/** Most builds {@link stopLeftoverBuilds} looks at: one ListBuildsForProject page, newest first, is one BatchGetBuilds call. */
const LEFTOVER_SCAN = 100;

/**
 * Stops builds of this project that are still IN_PROGRESS before a new one starts. Never throws.
 *
 * A cancelled `pulumi up` kills the runner with SIGKILL (see the comment of infra/build-runner.ts),
 * which leaves its build running — on an account whose quota is one build, ahead of the new build in
 * the queue. Such a build can only come from an earlier run: the project belongs to this stack alone,
 * and Pulumi locks the stack for the whole update, so no other runner can be following it. Its result
 * would never be used either, since this run starts a fresh build.
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

/** StartBuild, retried while the fresh service role is not assumable yet; `attempts` counts every StartBuild of this run. */
export async function startBuild(
  options: RunnerOptions,
  deps: RunnerDeps,
  fail: Fail,
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
