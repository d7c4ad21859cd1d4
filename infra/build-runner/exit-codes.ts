// The build runner's exit codes: the part of its contract with the Pulumi program that is not its output
// (the digest variable is DIGEST_VARIABLE in ../buildspec.ts, the output format ../runner-output.ts).

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
