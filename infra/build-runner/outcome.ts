// What a finished build means: success only with a valid exported digest; otherwise the failing phase,
// the log tail and the final error. Also recognises a build denied access before its first command.

import type { Build, BuildPhase } from "@aws-sdk/client-codebuild";

import { DIGEST_VARIABLE } from "../buildspec";
import { DIGEST_PATTERN } from "../runner-output";
import type { Fail, RunnerDeps, RunResult } from "./deps";
import { EXIT_CODES } from "./exit-codes";
import { logTail } from "./logs";

// Phases before any buildspec command runs: a failure there is about access and setup, not the build.
const EARLY_PHASES = new Set(["QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE"]);

const TERMINAL_FAILURES = new Set(["FAILED", "FAULT", "STOPPED", "TIMED_OUT"]);

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

/**
 * Reports the build the run ends with and returns the run's result.
 *
 * @param deniedAfterAttempts - set when the build was denied access before its first command and no
 *   attempt was left to retry it: the error then says IAM propagation is not the cause.
 */
export async function finish(
  build: Build,
  buildId: string,
  elapsed: string,
  deps: RunnerDeps,
  fail: Fail,
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
