import { SETTINGS } from "./settings";

/**
 * The environment variables the Pulumi program sets on the function (infra/conversion-function.ts)
 * and the function reads at cold start (lambda/src/config.ts). Dependency-free.
 */
export const FUNCTION_ENV = {
  outputBucket: "OUTPUT_BUCKET",
  deviceBucket: "DEVICE_CREDENTIALS_BUCKET",
  toolsDir: "LIBGOUROU_BIN_DIR",
  accessTokenSha256: "ACCESS_TOKEN_SHA256",
  downloadUrlExpirySeconds: SETTINGS.download_url_expiry_seconds.env,
  functionUrlAuth: SETTINGS.function_url_auth.env,
  opdsFeedTokenSha256: "OPDS_FEED_TOKEN_SHA256",
  kindleAddress: "KINDLE_ADDRESS",
  kindleFrom: "KINDLE_FROM",
  kindleTransport: "KINDLE_TRANSPORT",
  /** The NAME of the SSM SecureString parameter holding the SMTP URL; never the URL itself. */
  kindleSmtpParameter: "KINDLE_SMTP_PARAMETER",
} as const;
