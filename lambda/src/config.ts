/** Settings the handler reads from its environment once, at cold start. */
export interface HandlerConfig {
  /** Bucket the converted books are uploaded to (`OUTPUT_BUCKET`, required). */
  readonly outputBucket: string;
  /** Bucket holding the one shared Adobe device (`DEVICE_CREDENTIALS_BUCKET`, required). */
  readonly deviceBucket: string;
  /** Lifetime of presigned download URLs (`DOWNLOAD_URL_EXPIRY_SECONDS`). @default 3600 */
  readonly downloadUrlExpirySeconds: number;
  /** Directory holding `adept_activate`, `acsmdownloader`, `adept_remove` (`LIBGOUROU_BIN_DIR`, required). */
  readonly toolsDir: string;
  /** S3 endpoint override (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`); unset in AWS. */
  readonly s3Endpoint: string | undefined;
}

/** Presigned URLs signed with SigV4 cannot outlive 7 days. */
const MAX_PRESIGN_SECONDS = 604_800;

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name]?.trim();
  if (!value) {
    throw new Error(`Environment variable ${name} is required but not set; the deployment must provide it.`);
  }
  return value;
}

/**
 * Reads and validates the handler's environment. Throws naming the variable when one is missing or
 * invalid, so a misconfigured deployment fails on its first invocation instead of misbehaving.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HandlerConfig {
  const rawExpiry = env.DOWNLOAD_URL_EXPIRY_SECONDS?.trim() || "3600";
  const expiry = Number(rawExpiry);
  if (!Number.isInteger(expiry) || expiry < 1 || expiry > MAX_PRESIGN_SECONDS) {
    throw new Error(
      `DOWNLOAD_URL_EXPIRY_SECONDS is "${rawExpiry}"; it must be a whole number of seconds from 1 to ${MAX_PRESIGN_SECONDS}.`,
    );
  }
  return Object.freeze({
    outputBucket: required(env, "OUTPUT_BUCKET"),
    deviceBucket: required(env, "DEVICE_CREDENTIALS_BUCKET"),
    downloadUrlExpirySeconds: expiry,
    toolsDir: required(env, "LIBGOUROU_BIN_DIR"),
    s3Endpoint: env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim() || undefined,
  });
}
