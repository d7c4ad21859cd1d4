// The build runner's output contract, shared by the runner (which prints it) and the Pulumi program
// (which reads the digest from it). Kept apart from the runner so the program does not load the AWS SDK.

/** What a usable image digest looks like: Lambda pins the image by its manifest's sha256. */
export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/**
 * Extracts the build id and the image digest from the runner's complete stdout.
 *
 * @param stdout - the runner's stdout (local.Command trims one trailing newline; either form works).
 * @returns the id printed on the `build id: …` line and the digest on the last non-empty line.
 * @throws Error when the last non-empty line is not a `sha256:<64 hex>` digest, or when there is not
 *   exactly one `build id:` line — no digest, no deploy.
 */
export function parseRunnerOutput(stdout: string): { buildId: string; digest: string } {
  const lines = stdout
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const last = lines[lines.length - 1];
  if (last === undefined) {
    throw new Error("the build runner printed nothing; expected a 'build id: …' line and the image digest (sha256:<64 hex>) as the last line");
  }
  if (!DIGEST_PATTERN.test(last)) {
    const shown = last.length > 120 ? `${last.slice(0, 120)}…` : last;
    throw new Error(
      `the build runner's output does not end with an image digest (sha256:<64 lowercase hex>); its last line was ${JSON.stringify(shown)}. No digest, no deploy.`,
    );
  }
  const ids = lines.map((line) => /^build id: (\S+)$/.exec(line)?.[1]).filter((id): id is string => id !== undefined);
  if (ids.length !== 1) {
    throw new Error(`the build runner's output must contain exactly one 'build id: <id>' line; found ${ids.length}`);
  }
  return { buildId: ids[0] as string, digest: last };
}
