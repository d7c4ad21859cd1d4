import { checkChoice, checkInteger, FUNCTION_ENV, SETTINGS } from "./contract";

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
  const E = FUNCTION_ENV;
  const rawExpiry = env[E.downloadUrlExpirySeconds]?.trim() || String(SETTINGS.download_url_expiry_seconds.default);
  const expiry = checkInteger("download_url_expiry_seconds", rawExpiry);
  if (!expiry.ok) throw new Error(`${E.downloadUrlExpirySeconds} is "${rawExpiry}"; ${expiry.allowed} (seconds).`);
  const rawHash = env[E.accessTokenSha256]?.trim() || undefined;
  if (rawHash !== undefined && !/^[0-9a-f]{64}$/i.test(rawHash)) {
    throw new Error(`${E.accessTokenSha256} must be the 64 hex digits of the access token's SHA-256.`);
  }
  const rawAuth = env[E.functionUrlAuth]?.trim() || (rawHash ? "TOKEN" : undefined);
  const auth = rawAuth === undefined ? undefined : checkChoice("function_url_auth", rawAuth);
  if (auth !== undefined && !auth.ok) throw new Error(`${E.functionUrlAuth} is "${rawAuth}"; ${auth.allowed}.`);
  // Token mode without a hash would leave a public URL open: refuse to run instead.
  if (rawAuth === "TOKEN" && rawHash === undefined) {
    throw new Error(`Environment variable ${E.accessTokenSha256} is required when ${E.functionUrlAuth} is TOKEN; the deployment must provide it.`);
  }
  return Object.freeze({
    accessTokenSha256: rawHash === undefined ? undefined : Buffer.from(rawHash, "hex"),
    functionUrlAuth: rawAuth as HandlerConfig["functionUrlAuth"],
    outputBucket: required(env, E.outputBucket),
    deviceBucket: required(env, E.deviceBucket),
    downloadUrlExpirySeconds: expiry.value,
    toolsDir: required(env, E.toolsDir),
    s3Endpoint: env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim() || undefined,
  });
}
