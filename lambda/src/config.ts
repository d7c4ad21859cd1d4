import { checkChoice, checkInteger, FUNCTION_ENV, SETTINGS } from "./contract";
import { kindleAddressProblem } from "./kindle/mail-rules";

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
  /**
   * SHA-256 of the OPDS feed's own secret (`OPDS_FEED_TOKEN_SHA256`, 64 hex digits): the feed
   * answers at `/opds/<feed token>/`. Unset: no feed (those paths are unknown paths). @default undefined
   */
  readonly opdsFeedTokenSha256?: Buffer;
  /** S3 endpoint override (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`); unset in AWS. */
  readonly s3Endpoint: string | undefined;
  /** Send to Kindle (`KINDLE_ADDRESS` and the rest), when the stack set it up. @default undefined: off */
  readonly kindle?: KindleSettings;
}

/**
 * Where Send to Kindle mails a book, and through what. The SMTP server's URL (with its password) is
 * never in the environment: `smtpParameter` names the SSM SecureString parameter that holds it.
 */
export type KindleSettings = {
  /** The Send to Kindle address (`KINDLE_ADDRESS`, …@kindle.com). */
  readonly to: string;
  /** The sender approved at Amazon (`KINDLE_FROM`). */
  readonly from: string;
} & ({ readonly transport: "smtp"; readonly smtpParameter: string } | { readonly transport: "ses"; readonly region: string });

/** The Kindle settings of the environment, all or none; a half-set or invalid one stops the function. */
function kindleSettings(env: NodeJS.ProcessEnv): KindleSettings | undefined {
  const E = FUNCTION_ENV;
  const to = env[E.kindleAddress]?.trim() || undefined;
  if (to === undefined) return undefined;
  const problem = kindleAddressProblem(to);
  if (problem !== undefined) throw new Error(`${E.kindleAddress} is "${to}": ${problem}`);
  const from = required(env, E.kindleFrom);
  const transport = env[E.kindleTransport]?.trim() || "smtp";
  if (transport === "smtp") return { to, from, transport, smtpParameter: required(env, E.kindleSmtpParameter) };
  if (transport === "ses") return { to, from, transport, region: required(env, "AWS_REGION") };
  throw new Error(`${E.kindleTransport} is "${transport}"; it must be "smtp" or "ses".`);
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
  const rawFeedHash = env[E.opdsFeedTokenSha256]?.trim() || undefined;
  if (rawFeedHash !== undefined && !/^[0-9a-f]{64}$/i.test(rawFeedHash)) {
    throw new Error(`${E.opdsFeedTokenSha256} must be the 64 hex digits of the OPDS feed token's SHA-256.`);
  }
  const rawAuth = env[E.functionUrlAuth]?.trim() || (rawHash ? "TOKEN" : undefined);
  const auth = rawAuth === undefined ? undefined : checkChoice("function_url_auth", rawAuth);
  if (auth !== undefined && !auth.ok) throw new Error(`${E.functionUrlAuth} is "${rawAuth}"; ${auth.allowed}.`);
  // Token mode without a hash would leave a public URL open: refuse to run instead.
  if (rawAuth === "TOKEN" && rawHash === undefined) {
    throw new Error(`Environment variable ${E.accessTokenSha256} is required when ${E.functionUrlAuth} is TOKEN; the deployment must provide it.`);
  }
  const kindle = kindleSettings(env);
  return Object.freeze({
    ...(kindle === undefined ? {} : { kindle }),
    accessTokenSha256: rawHash === undefined ? undefined : Buffer.from(rawHash, "hex"),
    functionUrlAuth: rawAuth as HandlerConfig["functionUrlAuth"],
    ...(rawFeedHash === undefined ? {} : { opdsFeedTokenSha256: Buffer.from(rawFeedHash, "hex") }),
    outputBucket: required(env, E.outputBucket),
    deviceBucket: required(env, E.deviceBucket),
    downloadUrlExpirySeconds: expiry.value,
    toolsDir: required(env, E.toolsDir),
    s3Endpoint: env.AWS_ENDPOINT_URL_S3?.trim() || env.AWS_ENDPOINT_URL?.trim() || undefined,
  });
}
