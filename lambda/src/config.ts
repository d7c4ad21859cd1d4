/** Settings the handler reads from its environment once, at cold start. */
export interface HandlerConfig {
  /** Bucket the converted books are uploaded to (`OUTPUT_BUCKET`, required). */
  readonly outputBucket: string;
  /** Bucket holding the one shared Adobe device (`DEVICE_CREDENTIALS_BUCKET`, required). */
  readonly deviceBucket: string;
  /** Lifetime of presigned download URLs (`DOWNLOAD_URL_EXPIRY_SECONDS`). @default 3600 */
  readonly downloadUrlExpirySeconds: number;
  /** Directory holding `adept_activate`, `acsmdownloader`, `adept_remove`, `adept_loan_mgt` (`LIBGOUROU_BIN_DIR`, required). */
  readonly toolsDir: string;
  /**
   * SHA-256 of the access token (`ACCESS_TOKEN_SHA256`, 64 hex digits): when set, every Function URL
   * request but the page needs `Authorization: Bearer <token>`. Unset: no token check.
   */
  readonly accessTokenSha256: Buffer | undefined;
  /** The Function URL's access mode as the stack set it (`FUNCTION_URL_AUTH`), reported by health. @default "TOKEN" with a hash, else undefined */
  readonly functionUrlAuth: "AWS_IAM" | "NONE" | "TOKEN" | undefined;
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
  const rawHash = env.ACCESS_TOKEN_SHA256?.trim() || undefined;
  if (rawHash !== undefined && !/^[0-9a-f]{64}$/i.test(rawHash)) {
    throw new Error("ACCESS_TOKEN_SHA256 must be the 64 hex digits of the access token's SHA-256.");
  }
  const rawAuth = env.FUNCTION_URL_AUTH?.trim() || (rawHash ? "TOKEN" : undefined);
  if (rawAuth !== undefined && rawAuth !== "AWS_IAM" && rawAuth !== "NONE" && rawAuth !== "TOKEN") {
    throw new Error(`FUNCTION_URL_AUTH is "${rawAuth}"; it must be AWS_IAM, NONE or TOKEN.`);
  }
  // Token mode without a hash would leave a public URL open: refuse to run instead.
  if (rawAuth === "TOKEN" && rawHash === undefined) {
    throw new Error("Environment variable ACCESS_TOKEN_SHA256 is required when FUNCTION_URL_AUTH is TOKEN; the deployment must provide it.");
  }
  return Object.freeze({
    accessTokenSha256: rawHash === undefined ? undefined : Buffer.from(rawHash, "hex"),
    functionUrlAuth: rawAuth,
    outputBucket: required(env, "OUTPUT_BUCKET"),
    deviceBucket: required(env, "DEVICE_CREDENTIALS_BUCKET"),
    downloadUrlExpirySeconds: expiry,
    toolsDir: required(env, "LIBGOUROU_BIN_DIR"),
    s3Endpoint: env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim() || undefined,
  });
}
