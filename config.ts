import * as pulumi from "@pulumi/pulumi";
import {
  AUTO, checkChoice, checkInteger, kindleAddressProblem, LOG_RETENTION_DAYS, smtpUrlProblem, SETTINGS, UNRESERVED, UPSTREAM_REPOSITORIES,
  type IntegerSettingKey, type SettingSpec,
} from "./lambda/src/public";

/** CPU architecture of the Lambda function and of the image CodeBuild builds for it. */
export type LambdaArchitecture = "x86_64" | "arm64";

/**
 * Who may call the Function URL: AWS_IAM (SigV4-signed requests), NONE (anyone), or TOKEN (the URL is
 * public and the handler asks for the stack's access token as `Authorization: Bearer`).
 */
export type FunctionUrlAuth = "AWS_IAM" | "NONE" | "TOKEN";

/** How the function mails a book to the Kindle: an SMTP server (the default) or Amazon SES. */
export type KindleTransport = "smtp" | "ses";

/** Send to Kindle, when `kindle_address` is set. */
export type KindleConfig =
  | (KindleAddresses & {
      readonly transport: "smtp";
      /** The SMTP URL with its login: a Pulumi secret, handed only to the SSM parameter that keeps it. */
      readonly smtpUrl: pulumi.Output<string>;
    })
  | (KindleAddresses & {
      readonly transport: "ses";
      /** The verified SES identity (a domain or an address) the function may send as. @default kindle_from's domain */
      readonly sesIdentity: string;
    });

interface KindleAddresses {
  /** The reader's Send to Kindle address, `…@kindle.com`. */
  readonly address: string;
  /** The sender the reader approved at Amazon. */
  readonly from: string;
}

/** Everything the program needs to know, read and validated once before any resource exists. */
export interface KnockConfig {
  /** Pulumi project name; used for the ECR repository name. */
  readonly project: string;
  /** Pulumi stack name; used for the ECR repository and CodeBuild project names. */
  readonly stack: string;
  /** AWS region of every resource: `aws:region` (Pulumi.yaml gives every stack us-east-2), else
   *  `AWS_REGION` / `AWS_DEFAULT_REGION` as the AWS provider itself falls back. The original's
   *  `aws_region`, when set, must agree. */
  readonly region: string;
  /** The AWS provider's `aws:profile`, handed to the build runner so it calls AWS as the same identity. @default undefined */
  readonly awsProfile: string | undefined;
  /** Function timeout in seconds, 1–900. @default 900 */
  readonly lambdaTimeout: number;
  /** Function memory in MB, 128–10240. @default 3008 */
  readonly lambdaMemory: number;
  /** Days CloudWatch keeps the function's and the build's logs; one of the values CloudWatch accepts. @default 14 */
  readonly lambdaLogRetention: number;
  /** Size of the function's /tmp in MB, 512–10240. @default 2048 */
  readonly lambdaEphemeralStorage: number;
  /** @default "x86_64" */
  readonly lambdaArchitecture: LambdaArchitecture;
  /** Reserved concurrency, 1–900; undefined (config value -1) leaves the account's shared pool. Lambda
   *  lets a function reserve at most the account's unreserved concurrency minus 100, so 900 is the most
   *  a default account (1000) can reserve, and a new account limited to 10 can reserve nothing.
   *  @default undefined */
  readonly lambdaReservedConcurrency: number | undefined;
  /** Days a converted book stays in the output bucket, 1–3650. @default 1 */
  readonly outputBucketLifecycleDays: number;
  /** Images the ECR repository keeps, 1–1000. @default 5 */
  readonly ecrImageRetention: number;
  /** @default "BUILD_GENERAL1_MEDIUM" (x86_64), "BUILD_GENERAL1_LARGE" (arm64) */
  readonly codebuildComputeType: string;
  /** @default "aws/codebuild/standard:7.0" (x86_64), "aws/codebuild/amazonlinux-aarch64-standard:3.0" (arm64) */
  readonly codebuildImage: string;
  /** Attempts to start a build while CodeBuild cannot yet assume its new role, 1–100. @default 10 */
  readonly codebuildMaxRetries: number;
  /** Seconds between those attempts, 0–300. @default 30 */
  readonly codebuildRetryDelay: number;
  /** Minutes after which the build runner stops the build and fails, 5–480. @default 30 */
  readonly codebuildTimeoutMinutes: number;
  /** @default "AWS_IAM" */
  readonly functionUrlAuth: FunctionUrlAuth;
  /** Generation of the access token (TOKEN mode), 1–1000000: changing it replaces the token. @default 1 */
  readonly accessTokenVersion: number;
  /** Generation of the OPDS feed's token (TOKEN and NONE modes), 1–1000000: changing it replaces the token. @default 1 */
  readonly opdsFeedTokenVersion: number;
  /** Send to Kindle; undefined (the default, `kindle_address` empty) turns it off. @default undefined */
  readonly kindle: KindleConfig | undefined;
  /** Lifetime of the presigned download links in seconds, 60–604800 (SigV4's 7-day maximum). @default 3600 */
  readonly downloadUrlExpirySeconds: number;
  /** Git URL the image build clones libgourou from; a mirror when the upstream forge is down. @default the upstream forge */
  readonly libgourouRepository: string;
  /** Git URL the image build clones uPDFParser (libgourou's PDF library) from. @default the upstream forge */
  readonly updfparserRepository: string;
}

/**
 * Every project key, its type, default and allowed values: the shared settings table, which the
 * function, the build runner and `knock serve` check their values with too. `Pulumi.yaml` declares
 * exactly these keys (test/pulumi-project.test.ts holds the two together).
 */
export const CONFIG_KEYS = SETTINGS;
export type ConfigKeySpec = SettingSpec;
export { AUTO, LOG_RETENTION_DAYS, UNRESERVED, UPSTREAM_REPOSITORIES };

export type ConfigKey = keyof typeof CONFIG_KEYS;

/** Raised for a configuration value the program cannot use; the message names key, value, what is
 *  allowed, and the one command that fixes it. */
export class ConfigError extends Error {
  constructor(key: string, value: string, allowed: string, fix = `pulumi config set ${key} <value>`) {
    super(`Invalid configuration ${key}=${JSON.stringify(value)}: ${allowed}. Fix it with: ${fix}`);
    this.name = "ConfigError";
  }
}

/** Reads one raw config value; abstracted so the parsing rules can be tested without a Pulumi engine. */
export type ConfigSource = (key: string) => string | undefined;

/**
 * Reads and validates every configuration key and returns a frozen, typed object.
 * Throws {@link ConfigError} on the first invalid value, before any resource is registered.
 */
export function loadConfig(
  source: ConfigSource = pulumiConfigSource(),
  names = stackNames(),
  env: NodeJS.ProcessEnv = process.env,
): KnockConfig {
  const architecture = oneOf(source, "lambda_architecture") as LambdaArchitecture;
  const arm = architecture === "arm64";
  const computeType = oneOf(source, "codebuild_compute_type");
  const image = imageName(source, "codebuild_image");
  const reserved = integer(source, "lambda_reserved_concurrency");
  return Object.freeze({
    project: names.project,
    stack: names.stack,
    region: region(source, env),
    awsProfile: source("aws:profile") || undefined,
    lambdaTimeout: integer(source, "lambda_timeout"),
    lambdaMemory: integer(source, "lambda_memory"),
    lambdaLogRetention: integer(source, "lambda_log_retention"),
    lambdaEphemeralStorage: integer(source, "lambda_ephemeral_storage"),
    lambdaArchitecture: architecture,
    lambdaReservedConcurrency: reserved === UNRESERVED ? undefined : reserved,
    outputBucketLifecycleDays: integer(source, "output_bucket_lifecycle_days"),
    ecrImageRetention: integer(source, "ecr_image_retention"),
    // ARM build hosts run a different image family, and CodeBuild's ARM fleet has historically not
    // offered MEDIUM, so "auto" follows the architecture; explicit values are used as given.
    codebuildComputeType: computeType === AUTO ? (arm ? "BUILD_GENERAL1_LARGE" : "BUILD_GENERAL1_MEDIUM") : computeType,
    codebuildImage: image === AUTO ? (arm ? "aws/codebuild/amazonlinux-aarch64-standard:3.0" : "aws/codebuild/standard:7.0") : image,
    codebuildMaxRetries: integer(source, "codebuild_max_retries"),
    codebuildRetryDelay: integer(source, "codebuild_retry_delay"),
    codebuildTimeoutMinutes: integer(source, "codebuild_timeout_minutes"),
    functionUrlAuth: oneOf(source, "function_url_auth") as FunctionUrlAuth,
    accessTokenVersion: integer(source, "access_token_version"),
    opdsFeedTokenVersion: integer(source, "opds_feed_token_version"),
    kindle: kindle(source, isSecretKey(env, names.project)),
    downloadUrlExpirySeconds: integer(source, "download_url_expiry_seconds"),
    libgourouRepository: gitUrl(source, "libgourou_repository"),
    updfparserRepository: gitUrl(source, "updfparser_repository"),
  });
}

function pulumiConfigSource(): ConfigSource {
  const project = new pulumi.Config();
  const aws = new pulumi.Config("aws");
  return (key) => (key.startsWith("aws:") ? aws.get(key.slice("aws:".length)) : project.get(key));
}

function stackNames(): { project: string; stack: string } {
  return { project: pulumi.getProject(), stack: pulumi.getStack() };
}

/**
 * Whether a project key was set with `--secret`: the Pulumi CLI hands the program the full names of
 * its secret keys as a JSON array in PULUMI_CONFIG_SECRET_KEYS, beside the values in PULUMI_CONFIG
 * (@pulumi/pulumi 3's runtime/config.ts, configSecretKeysEnvKey, read by isConfigSecret).
 */
function isSecretKey(env: NodeJS.ProcessEnv, project: string): (key: string) => boolean {
  let keys: unknown = [];
  try {
    keys = JSON.parse(env.PULUMI_CONFIG_SECRET_KEYS || "[]");
  } catch {
    keys = [];
  }
  const secret = new Set(Array.isArray(keys) ? keys.map(String) : []);
  return (key) => secret.has(`${project}:${key}`);
}

/** A key's raw value, or undefined when it is unset or empty (the CLI hands over defaults as text). */
function raw(source: ConfigSource, key: string): string | undefined {
  const value = source(key);
  return value === undefined || value.trim() === "" ? undefined : value;
}

function region(source: ConfigSource, env: NodeJS.ProcessEnv): string {
  // The stacks use the default AWS provider, which reads only `aws:region` (or, failing that, the
  // environment). `aws_region` is the original program's key: accepted when it agrees, and pointed at
  // `aws:region` otherwise, so the program never deploys to a region other than the one configured.
  const fromProvider = raw(source, "aws:region");
  const legacy = raw(source, "aws_region");
  if (legacy !== undefined && legacy !== fromProvider) {
    const allowed = fromProvider === undefined
      ? "the AWS provider reads only aws:region"
      : `the AWS provider deploys to aws:region (${fromProvider}); aws_region must be empty or the same`;
    throw new ConfigError("aws_region", legacy, allowed, `pulumi config set aws:region ${legacy}`);
  }
  const value = fromProvider ?? (env.AWS_REGION || undefined) ?? (env.AWS_DEFAULT_REGION || undefined);
  if (value === undefined) {
    throw new ConfigError("aws:region", "", "no region is configured", "pulumi config set aws:region us-east-2");
  }
  if (!/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/.test(value)) {
    throw new ConfigError("aws:region", value, "expected an AWS region name such as us-east-2");
  }
  return value;
}

function integer(source: ConfigSource, key: IntegerSettingKey): number {
  const text = raw(source, key);
  if (text === undefined) return SETTINGS[key].default;
  const checked = checkInteger(key, text);
  if (!checked.ok) throw new ConfigError(key, text, checked.allowed);
  return checked.value;
}

function oneOf(source: ConfigSource, key: ConfigKey): string {
  const text = raw(source, key);
  if (text === undefined) return String(SETTINGS[key].default);
  const checked = checkChoice(key, text);
  if (!checked.ok) throw new ConfigError(key, text, checked.allowed);
  return checked.value;
}

function imageName(source: ConfigSource, key: ConfigKey): string {
  const spec: ConfigKeySpec = CONFIG_KEYS[key];
  const text = source(key);
  if (text === undefined) return String(spec.default);
  if (text.trim() === "" || /\s/.test(text)) throw new ConfigError(key, text, `expected an image name without spaces, or ${AUTO}`);
  return text;
}

/**
 * A repository URL git can clone inside CodeBuild. The value reaches the build as a `--build-arg` in
 * the environment (never spliced into a command), but a space or a scheme git would read as a local
 * path or an option (`-u…`, `file:`, `ext::`) is refused here, where the message can name the key.
 */
function gitUrl(source: ConfigSource, key: ConfigKey): string {
  const spec: ConfigKeySpec = CONFIG_KEYS[key];
  const text = raw(source, key);
  if (text === undefined) return String(spec.default);
  if (!/^(https?|git|ssh):\/\/[^\s/]+\/\S*$/.test(text)) {
    throw new ConfigError(key, text, "expected a git repository URL starting with https://, http://, git:// or ssh://, without spaces", `pulumi config set ${key} https://<mirror>/<repository>.git`);
  }
  return text;
}

/** What a mail address may hold here: no spaces, no second `@`, nothing a mail header would misread. */
const ADDRESS = /^[^\s@<>()",;:\\]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)$/;

/** An SMTP URL fit for an error message: the password replaced, or nothing shown when it does not parse. */
export function withoutPassword(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== "") url.password = "****";
    return url.href;
  } catch {
    return "<not shown: it may hold a password>";
  }
}

const SMTP_FIX = "pulumi config set --secret kindle_smtp_url 'smtps://you%40gmail.com:APP-PASSWORD@smtp.gmail.com:465'";

/**
 * Send to Kindle's keys, read only when `kindle_address` is set (the other keys then mean nothing).
 * The SMTP URL is wrapped as a Pulumi secret here, before it goes anywhere: only the SSM parameter
 * that keeps it is handed the value, and an error shows it without its password.
 */
function kindle(source: ConfigSource, isSecret: (key: string) => boolean): KindleConfig | undefined {
  const address = raw(source, "kindle_address")?.trim();
  if (address === undefined) return undefined;
  const addressProblem = kindleAddressProblem(address);
  if (addressProblem !== undefined) throw new ConfigError("kindle_address", address, addressProblem.replace(/\.$/, ""), "pulumi config set kindle_address <name>@kindle.com");

  const from = raw(source, "kindle_from")?.trim();
  if (from === undefined) {
    throw new ConfigError("kindle_from", "", "required when kindle_address is set: the address the books are mailed from, approved in Amazon's Personal Document Settings", "pulumi config set kindle_from you@gmail.com");
  }
  const fromMatch = ADDRESS.exec(from);
  if (fromMatch === null) throw new ConfigError("kindle_from", from, "expected a mail address such as you@gmail.com", "pulumi config set kindle_from you@gmail.com");
  // Amazon mails a Kindle address, never from one: kindle_address and kindle_from swapped, most likely.
  if (kindleAddressProblem(from) === undefined) {
    throw new ConfigError("kindle_from", from, "expected the address you send from, not a Kindle address", "pulumi config set kindle_from you@gmail.com");
  }

  const transport = oneOf(source, "kindle_transport") as KindleTransport;
  const smtpText = raw(source, "kindle_smtp_url")?.trim();
  const identityText = raw(source, "kindle_ses_identity")?.trim();
  if (transport === "smtp") {
    if (identityText !== undefined) {
      throw new ConfigError("kindle_ses_identity", identityText, "used only with kindle_transport ses", "pulumi config rm kindle_ses_identity");
    }
    if (smtpText === undefined) throw new ConfigError("kindle_smtp_url", "", "required with kindle_transport smtp", SMTP_FIX);
    // A plain value would sit unencrypted in Pulumi.<stack>.yaml, password and all.
    if (!isSecret("kindle_smtp_url")) {
      throw new ConfigError("kindle_smtp_url", withoutPassword(smtpText), "it holds a password, so it must be set as a secret (Pulumi then keeps it encrypted)", SMTP_FIX);
    }
    const problem = smtpUrlProblem(smtpText);
    if (problem !== undefined) throw new ConfigError("kindle_smtp_url", withoutPassword(smtpText), problem.replace(/\.$/, ""), SMTP_FIX);
    return Object.freeze({ transport, address, from, smtpUrl: pulumi.secret(smtpText) });
  }

  // The SMTP URL would be a secret kept for nothing: say so rather than store it.
  if (smtpText !== undefined) {
    throw new ConfigError("kindle_smtp_url", withoutPassword(smtpText), "used only with kindle_transport smtp", "pulumi config rm kindle_smtp_url");
  }
  const fromDomain = fromMatch[1].toLowerCase();
  const sesIdentity = identityText ?? fromDomain;
  const identityFix = `pulumi config set kindle_ses_identity ${fromDomain}`;
  if (sesIdentity.includes("@")) {
    if (ADDRESS.exec(sesIdentity) === null) throw new ConfigError("kindle_ses_identity", sesIdentity, "expected a verified SES domain or address", identityFix);
    if (sesIdentity.toLowerCase() !== from.toLowerCase()) {
      throw new ConfigError("kindle_ses_identity", sesIdentity, `an address identity can send only as itself, and kindle_from is ${from}`, identityFix);
    }
  } else {
    if (ADDRESS.exec(`x@${sesIdentity}`) === null) throw new ConfigError("kindle_ses_identity", sesIdentity, "expected a verified SES domain or address", identityFix);
    const domain = sesIdentity.toLowerCase();
    if (fromDomain !== domain && !fromDomain.endsWith(`.${domain}`)) {
      throw new ConfigError("kindle_ses_identity", sesIdentity, `kindle_from (${from}) is not at this domain`, identityFix);
    }
  }
  return Object.freeze({ transport, address, from, sesIdentity });
}
