import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { KnockConfig } from "../config";
import { assumableBy, policyJson } from "./iam";
import { functionLogGroupName, functionName } from "./naming";

export interface ConversionFunctionArgs {
  /** Digest-pinned image to run. */
  readonly imageUri: pulumi.Input<string>;
  /** Where converted books go. */
  readonly outputBucket: aws.s3.Bucket;
  /** Where the Adobe device credentials live. */
  readonly deviceBucket: aws.s3.Bucket;
  /** SHA-256 (hex) of the access token; required when `function_url_auth` is TOKEN, unused otherwise. */
  readonly accessTokenSha256?: pulumi.Input<string>;
}

export interface ConversionFunction {
  readonly logGroup: aws.cloudwatch.LogGroup;
  readonly function: aws.lambda.Function;
  readonly functionUrl: aws.lambda.FunctionUrl;
}

/** Prefix of every object the handler writes to the output bucket (one folder per request below it). */
export const OUTPUT_PREFIX = "converted/";

/** Prefix of the device document in the device bucket (the handler keeps `adept/device.json`). */
export const DEVICE_PREFIX = "adept/";

/** The container Lambda that converts ACSM files, its log group, its role and its Function URL. */
export function createConversionFunction(config: KnockConfig, args: ConversionFunctionArgs, opts?: pulumi.CustomResourceOptions): ConversionFunction {
  const name = functionName(config.project, config.stack);
  const tokenMode = config.functionUrlAuth === "TOKEN";
  if (tokenMode && args.accessTokenSha256 === undefined) {
    throw new Error("function_url_auth TOKEN needs the access token's hash (createAccessToken) for the function.");
  }

  // Created before the function and handed to it, so the first invocation cannot create the group
  // itself with infinite retention (the original then failed with "already exists").
  const logGroup = new aws.cloudwatch.LogGroup("knock-lambda-logs", {
    name: functionLogGroupName(name),
    retentionInDays: config.lambdaLogRetention,
  }, opts);

  const role = new aws.iam.Role("knock-lambda-role", { assumeRolePolicy: assumableBy("lambda.amazonaws.com") }, opts);
  const logsPolicy = new aws.iam.RolePolicy("knock-lambda-policy", {
    role: role.id,
    // The group already exists, so the function needs to write to it but never to create one.
    policy: policyJson([
      { sid: "WriteOwnLogs", actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [pulumi.interpolate`${logGroup.arn}:*`] },
    ]),
  }, opts);
  const s3Policy = new aws.iam.RolePolicy("knock-lambda-s3-policy", {
    role: role.id,
    policy: policyJson([
      // Upload converted books (multipart for large PDFs) and sign GET links to them: a presigned URL
      // carries the signer's permissions, so the role itself must be allowed to read what it links to.
      {
        sid: "StoreConvertedBooks",
        actions: ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
        resources: [pulumi.interpolate`${args.outputBucket.arn}/${OUTPUT_PREFIX}*`],
      },
      // Load, store (conditionally, so concurrent cold starts agree on one device) and reset the device.
      { sid: "KeepDeviceCredentials", actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources: [pulumi.interpolate`${args.deviceBucket.arn}/${DEVICE_PREFIX}*`] },
      // Without ListBucket a missing device object reads as 403 AccessDenied instead of 404, and the
      // handler could not tell "never activated" from "not allowed".
      { sid: "SeeMissingDevice", actions: ["s3:ListBucket"], resources: [args.deviceBucket.arn] },
    ]),
  }, opts);

  const fn = new aws.lambda.Function("knock-lambda", {
    name,
    packageType: "Image",
    imageUri: args.imageUri,
    role: role.arn,
    architectures: [config.lambdaArchitecture],
    timeout: config.lambdaTimeout,
    memorySize: config.lambdaMemory,
    ephemeralStorage: { size: config.lambdaEphemeralStorage },
    reservedConcurrentExecutions: config.lambdaReservedConcurrency,
    loggingConfig: { logFormat: "Text", logGroup: logGroup.name },
    environment: {
      variables: {
        OUTPUT_BUCKET: args.outputBucket.id,
        DEVICE_CREDENTIALS_BUCKET: args.deviceBucket.id,
        DOWNLOAD_URL_EXPIRY_SECONDS: String(config.downloadUrlExpirySeconds),
        FUNCTION_URL_AUTH: config.functionUrlAuth,
        // Only the hash: reading the function's configuration gives nothing that opens the service.
        ...(tokenMode ? { ACCESS_TOKEN_SHA256: args.accessTokenSha256 } : {}),
      },
    },
  }, {
    ...opts,
    // The first request must not fail for want of permissions that are still being attached.
    dependsOn: [logsPolicy, s3Policy],
  });

  const functionUrl = new aws.lambda.FunctionUrl("knock-lambda-url", {
    functionName: fn.name,
    // TOKEN: the URL is public and the handler itself asks for the token.
    authorizationType: tokenMode ? "NONE" : config.functionUrlAuth,
    cors: {
      allowOrigins: ["*"],
      allowMethods: ["GET", "POST"],
      allowHeaders: ["*"],
      maxAge: 300,
      allowCredentials: false,
    },
  }, {
    ...opts,
    // The provider adds the public-invoke permissions for auth NONE only when it creates the URL, so
    // a change of auth type must create a new one (and a function has at most one URL).
    replaceOnChanges: ["authorizationType"],
    deleteBeforeReplace: true,
  });

  return { logGroup, function: fn, functionUrl };
}
