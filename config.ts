import * as pulumi from "@pulumi/pulumi";

/** CPU architecture of the Lambda function and of the image CodeBuild builds for it. */
export type LambdaArchitecture = "x86_64" | "arm64";

/** Who may call the Function URL. */
export type FunctionUrlAuth = "AWS_IAM" | "NONE";

/** Everything the program needs to know, read and validated once before any resource exists. */
export interface KnockConfig {
  /** Pulumi project name; used for the ECR repository name. */
  readonly project: string;
  /** Pulumi stack name; used for the ECR repository and CodeBuild project names. */
  readonly stack: string;
  /** AWS region of every resource: `aws:region` (Pulumi.dev.yaml sets us-east-2), else `AWS_REGION` /
   *  `AWS_DEFAULT_REGION` as the AWS provider itself falls back. The original's `aws_region` must agree. */
  readonly region: string;
  /** The AWS provider's `aws:profile`, handed to the build runner so it calls AWS as the same identity. @default undefined */
  readonly awsProfile: string | undefined;
  /** Function timeout in seconds, 1–900. @default 900 */
  readonly lambdaTimeout: number;
  /** Function memory in MB, 128–10240. @default 3008 */
  readonly lambdaMemory: number;
  /** Days CloudWatch keeps the function's logs; one of the values CloudWatch accepts. @default 14 */
  readonly lambdaLogRetention: number;
  /** Size of the function's /tmp in MB, 512–10240. @default 2048 */
  readonly lambdaEphemeralStorage: number;
  /** @default "x86_64" */
  readonly lambdaArchitecture: LambdaArchitecture;
  /** Reserved concurrency; unset leaves the account's shared pool (setting it fails on accounts whose
   *  total concurrency is 10). @default undefined */
  readonly lambdaReservedConcurrency: number | undefined;
  /** Days a converted book stays in the output bucket, ≥ 1. @default 1 */
  readonly outputBucketLifecycleDays: number;
  /** Images the ECR repository keeps, ≥ 1. @default 5 */
  readonly ecrImageRetention: number;
  /** @default "BUILD_GENERAL1_MEDIUM" (x86_64), "BUILD_GENERAL1_LARGE" (arm64) */
  readonly codebuildComputeType: string;
  /** @default "aws/codebuild/standard:7.0" (x86_64), "aws/codebuild/amazonlinux-aarch64-standard:3.0" (arm64) */
  readonly codebuildImage: string;
  /** Attempts to start a build while CodeBuild cannot yet assume its new role, ≥ 1. @default 10 */
  readonly codebuildMaxRetries: number;
  /** Seconds between those attempts, 0–300. @default 30 */
  readonly codebuildRetryDelay: number;
  /** Minutes after which the build runner stops the build and fails, 5–480. @default 30 */
  readonly codebuildTimeoutMinutes: number;
  /** @default "AWS_IAM" */
  readonly functionUrlAuth: FunctionUrlAuth;
  /** Lifetime of the presigned download links in seconds, 60–604800 (SigV4's 7-day maximum). @default 3600 */
  readonly downloadUrlExpirySeconds: number;
}

/** The retention periods CloudWatch Logs accepts (PutRetentionPolicy); anything else is rejected by AWS. */
export const LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

const COMPUTE_TYPES = [
  "BUILD_GENERAL1_SMALL",
  "BUILD_GENERAL1_MEDIUM",
  "BUILD_GENERAL1_LARGE",
  "BUILD_GENERAL1_XLARGE",
  "BUILD_GENERAL1_2XLARGE",
] as const;

/** Raised for a configuration value the program cannot use; the message names key, value and what is allowed. */
export class ConfigError extends Error {
  constructor(key: string, value: string, allowed: string) {
    super(`Invalid configuration ${key}=${JSON.stringify(value)}: ${allowed}. Fix it with: pulumi config set ${key} <value>`);
    this.name = "ConfigError";
  }
}

/** Reads one raw config value; abstracted so the parsing rules can be tested without a Pulumi engine. */
export type ConfigSource = (key: string) => string | undefined;

/**
 * Reads and validates every configuration key (SPEC §4) and returns a frozen, typed object.
 * Throws {@link ConfigError} on the first invalid value, before any resource is registered.
 */
export function loadConfig(
  source: ConfigSource = pulumiConfigSource(),
  names = stackNames(),
  env: NodeJS.ProcessEnv = process.env,
): KnockConfig {
  const architecture = oneOf(source, "lambda_architecture", ["x86_64", "arm64"] as const, "x86_64");
  const arm = architecture === "arm64";
  return Object.freeze({
    project: names.project,
    stack: names.stack,
    region: region(source, env),
    awsProfile: source("aws:profile") || undefined,
    lambdaTimeout: integer(source, "lambda_timeout", 900, 1, 900),
    lambdaMemory: integer(source, "lambda_memory", 3008, 128, 10240),
    lambdaLogRetention: logRetention(source),
    lambdaEphemeralStorage: integer(source, "lambda_ephemeral_storage", 2048, 512, 10240),
    lambdaArchitecture: architecture,
    lambdaReservedConcurrency: optionalInteger(source, "lambda_reserved_concurrency", 1, 1000),
    outputBucketLifecycleDays: integer(source, "output_bucket_lifecycle_days", 1, 1, 3650),
    ecrImageRetention: integer(source, "ecr_image_retention", 5, 1, 1000),
    // ARM build hosts run a different image family, and CodeBuild's ARM fleet has historically not offered
    // MEDIUM, so both defaults follow the architecture; explicit values are used as given.
    codebuildComputeType: oneOf(source, "codebuild_compute_type", COMPUTE_TYPES, arm ? "BUILD_GENERAL1_LARGE" : "BUILD_GENERAL1_MEDIUM"),
    codebuildImage: nonEmpty(source, "codebuild_image", arm ? "aws/codebuild/amazonlinux-aarch64-standard:3.0" : "aws/codebuild/standard:7.0"),
    codebuildMaxRetries: integer(source, "codebuild_max_retries", 10, 1, 100),
    codebuildRetryDelay: integer(source, "codebuild_retry_delay", 30, 0, 300),
    codebuildTimeoutMinutes: integer(source, "codebuild_timeout_minutes", 30, 5, 480),
    functionUrlAuth: oneOf(source, "function_url_auth", ["AWS_IAM", "NONE"] as const, "AWS_IAM"),
    downloadUrlExpirySeconds: integer(source, "download_url_expiry_seconds", 3600, 60, 604800),
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

function region(source: ConfigSource, env: NodeJS.ProcessEnv): string {
  // The stacks use the default AWS provider, which reads only `aws:region` (or, failing that, the
  // environment). `aws_region` is the original program's key: accepted when it agrees, and pointed at
  // `aws:region` otherwise, so the program never deploys to a region other than the one configured.
  const fromProvider = source("aws:region");
  const legacy = source("aws_region");
  if (legacy !== undefined && fromProvider === undefined) {
    throw new ConfigError("aws_region", legacy, `the AWS provider reads aws:region; run: pulumi config set aws:region ${legacy}`);
  }
  if (legacy !== undefined && fromProvider !== undefined && legacy !== fromProvider) {
    throw new ConfigError("aws_region", legacy, `it must equal aws:region (${fromProvider}) or be removed: pulumi config rm aws_region`);
  }
  const value = fromProvider ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (value === undefined) {
    throw new ConfigError("aws:region", "", "no region is configured; run: pulumi config set aws:region us-east-2");
  }
  if (!/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/.test(value)) {
    throw new ConfigError("aws:region", value, "expected an AWS region name such as us-east-2");
  }
  return value;
}

function integer(source: ConfigSource, key: string, fallback: number, min: number, max: number): number {
  return optionalInteger(source, key, min, max) ?? fallback;
}

function optionalInteger(source: ConfigSource, key: string, min: number, max: number): number | undefined {
  const raw = source(key);
  if (raw === undefined || raw.trim() === "") return undefined;
  const allowed = `expected a whole number from ${min} to ${max}`;
  if (!/^\s*-?\d+\s*$/.test(raw)) throw new ConfigError(key, raw, allowed);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(key, raw, allowed);
  return value;
}

function logRetention(source: ConfigSource): number {
  const key = "lambda_log_retention";
  const value = integer(source, key, 14, 1, 3653);
  if (!LOG_RETENTION_DAYS.includes(value)) {
    throw new ConfigError(key, String(value), `CloudWatch Logs accepts only ${LOG_RETENTION_DAYS.join(", ")} days`);
  }
  return value;
}

function oneOf<T extends string>(source: ConfigSource, key: string, allowed: readonly T[], fallback: T): T {
  const raw = source(key);
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(key, raw, `expected one of ${allowed.join(", ")}`);
  }
  return raw as T;
}

function nonEmpty(source: ConfigSource, key: string, fallback: string): string {
  const raw = source(key);
  if (raw === undefined) return fallback;
  if (raw.trim() === "" || /\s/.test(raw)) throw new ConfigError(key, raw, "expected an image name without spaces");
  return raw;
}
