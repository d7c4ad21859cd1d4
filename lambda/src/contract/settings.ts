/**
 * Every setting of a deployment, written once: its Pulumi config key, type, default and allowed
 * values, and — where another process reads it — the environment variable that carries it there
 * (the function, the build runner) and the `knock serve` flag that stands for it. `Pulumi.yaml`
 * declares the same keys and defaults (test/pulumi-project.test.ts), the stack's config.ts parses
 * them with {@link checkSetting}, and the function, the runner and `knock serve` check what they
 * are handed with the same function, so a range is never written twice.
 *
 * Dependency-free: imported by the function (inside its image), the Pulumi program and the client.
 */

/** Where libgourou and uPDFParser live upstream; lambda/Dockerfile defaults to the same URLs. */
export const UPSTREAM_REPOSITORIES = {
  libgourou: "https://forge.soutade.fr/soutade/libgourou.git",
  updfparser: "https://forge.soutade.fr/soutade/uPDFParser.git",
} as const;

/** The retention periods CloudWatch Logs accepts (PutRetentionPolicy); anything else is rejected by AWS. */
export const LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** CodeBuild's compute types for container builds. */
export const COMPUTE_TYPES = [
  "BUILD_GENERAL1_SMALL",
  "BUILD_GENERAL1_MEDIUM",
  "BUILD_GENERAL1_LARGE",
  "BUILD_GENERAL1_XLARGE",
  "BUILD_GENERAL1_2XLARGE",
] as const;

/** The value of `codebuild_compute_type` and `codebuild_image` that means "pick for the architecture". */
export const AUTO = "auto";

/** The value of `lambda_reserved_concurrency` that means "no reservation" (the AWS provider's own -1). */
export const UNRESERVED = -1;

/** Presigned URLs signed with SigV4 cannot outlive 7 days (604800 s). */
export const MAX_PRESIGN_SECONDS = 604_800;

/** Where else a setting travels: the variable a process reads it from, the flag `knock serve` takes for it. */
interface Carried {
  /** The environment variable the function or the build runner reads the value from. */
  readonly env?: string;
  /** The `knock serve` option that stands for the setting on a local service. */
  readonly serveFlag?: string;
}

/** One project key as `Pulumi.yaml` declares it and every side accepts it. */
export type SettingSpec =
  | ({ readonly type: "integer"; readonly default: number; readonly min: number; readonly max: number; readonly unset?: number; readonly values?: readonly number[] } & Carried)
  | ({ readonly type: "string"; readonly default: string; readonly values?: readonly string[] } & Carried);

/**
 * Every project-namespaced key. The Pulumi CLI applies the defaults before the program runs; an
 * optional key's default is the value that means "unset", because the CLI refuses to run a stack
 * that lacks a typed key with no default.
 */
export const SETTINGS = {
  aws_region: { type: "string", default: "" },
  lambda_timeout: { type: "integer", default: 900, min: 1, max: 900, serveFlag: "--timeout" },
  lambda_memory: { type: "integer", default: 3008, min: 128, max: 10240 },
  lambda_log_retention: { type: "integer", default: 14, min: 1, max: 3653, values: LOG_RETENTION_DAYS },
  lambda_ephemeral_storage: { type: "integer", default: 2048, min: 512, max: 10240 },
  lambda_architecture: { type: "string", default: "x86_64", values: ["x86_64", "arm64"] },
  lambda_reserved_concurrency: { type: "integer", default: UNRESERVED, min: 1, max: 900, unset: UNRESERVED },
  output_bucket_lifecycle_days: { type: "integer", default: 1, min: 1, max: 3650 },
  ecr_image_retention: { type: "integer", default: 5, min: 1, max: 1000 },
  codebuild_compute_type: { type: "string", default: AUTO, values: [AUTO, ...COMPUTE_TYPES] },
  codebuild_image: { type: "string", default: AUTO },
  codebuild_max_retries: { type: "integer", default: 10, min: 1, max: 100, env: "CODEBUILD_MAX_RETRIES" },
  codebuild_retry_delay: { type: "integer", default: 30, min: 0, max: 300, env: "CODEBUILD_RETRY_DELAY_SECONDS" },
  codebuild_timeout_minutes: { type: "integer", default: 30, min: 5, max: 480, env: "CODEBUILD_TIMEOUT_MINUTES" },
  function_url_auth: { type: "string", default: "AWS_IAM", values: ["AWS_IAM", "NONE", "TOKEN"], env: "FUNCTION_URL_AUTH" },
  access_token_version: { type: "integer", default: 1, min: 1, max: 1000000 },
  download_url_expiry_seconds: {
    type: "integer", default: 3600, min: 60, max: MAX_PRESIGN_SECONDS, env: "DOWNLOAD_URL_EXPIRY_SECONDS", serveFlag: "--link-expiry",
  },
  libgourou_repository: { type: "string", default: UPSTREAM_REPOSITORIES.libgourou },
  updfparser_repository: { type: "string", default: UPSTREAM_REPOSITORIES.updfparser },
  // The OPDS feed (function_url_auth TOKEN or NONE): its token's generation, like access_token_version.
  opds_feed_token_version: { type: "integer", default: 1, min: 1, max: 1000000 },
  // Send to Kindle: off while kindle_address is empty. kindle_smtp_url is a Pulumi secret.
  kindle_address: { type: "string", default: "" },
  kindle_from: { type: "string", default: "" },
  kindle_transport: { type: "string", default: "smtp", values: ["smtp", "ses"] },
  kindle_smtp_url: { type: "string", default: "" },
  kindle_ses_identity: { type: "string", default: "" },
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;

/** The keys whose spec is an integer. */
export type IntegerSettingKey = { [K in SettingKey]: (typeof SETTINGS)[K]["type"] extends "integer" ? K : never }[SettingKey];

/** What a key accepts, in the words every error message uses ("a whole number from 1 to 900"). */
export function allowedValues(key: SettingKey): string {
  const spec: SettingSpec = SETTINGS[key];
  if (spec.type === "string") return spec.values ? `one of ${spec.values.join(", ")}` : "text";
  if (spec.values) return `one of ${spec.values.join(", ")}`;
  return `a whole number from ${spec.min} to ${spec.max}${spec.unset === undefined ? "" : `, or ${spec.unset} for none`}`;
}

/** The outcome of checking one value: the value, or what is wrong with it. */
export type SettingCheck<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly allowed: string };

/**
 * Checks an integer setting's text as every side reads it: an optional sign and digits (what the
 * Pulumi CLI's `integer` type admits, surrounding spaces ignored), then the range or the list of
 * values, or the key's "unset" value.
 */
export function checkInteger(key: IntegerSettingKey, text: string): SettingCheck<number> {
  const spec: SettingSpec = SETTINGS[key];
  if (spec.type !== "integer") throw new TypeError(`${key} is not an integer setting`);
  const refused = { ok: false, allowed: `expected ${allowedValues(key)}` } as const;
  if (!/^\s*[-+]?\d+\s*$/.test(text)) return refused;
  const value = Number(text);
  if (value === spec.unset) return { ok: true, value };
  if (value < spec.min || value > spec.max || (spec.values !== undefined && !spec.values.includes(value))) return refused;
  return { ok: true, value };
}

/** Checks an enumerated string setting. */
export function checkChoice(key: SettingKey, text: string): SettingCheck<string> {
  const spec: SettingSpec = SETTINGS[key];
  if (spec.type !== "string" || spec.values === undefined) throw new TypeError(`${key} is not an enumerated setting`);
  return spec.values.includes(text) ? { ok: true, value: text } : { ok: false, allowed: `expected ${allowedValues(key)}` };
}
