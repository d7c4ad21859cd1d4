import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { KnockConfig } from "../config";
import { corsMethods, DEVICE_PREFIX, FUNCTION_ENV, OUTPUT_PREFIX } from "../lambda/src/public";
import { assumableBy, policyJson } from "./iam";
import type { KindleMail } from "./kindle-mail";
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
  /** SHA-256 (hex) of the OPDS feed's secret (TOKEN and NONE mode); none: no feed. */
  readonly opdsFeedTokenSha256?: pulumi.Input<string>;
  /** Send to Kindle's environment and grants (createKindleMail); none: off. */
  readonly kindle?: KindleMail;
}

export interface ConversionFunction {
  readonly logGroup: aws.cloudwatch.LogGroup;
  readonly function: aws.lambda.Function;
  readonly functionUrl: aws.lambda.FunctionUrl;
}

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
      // The same for books: a repeated ACSM is answered with its stored book only after S3 said the
      // book (or its index under converted/by-acsm/) is there or is gone — 404, not 403.
      { sid: "SeeMissingBooks", actions: ["s3:ListBucket"], resources: [args.outputBucket.arn] },
    ]),
  }, opts);

  // Its own policy, so that a stack without Send to Kindle keeps its role exactly as it was.
  const kindlePolicy = args.kindle === undefined ? undefined : new aws.iam.RolePolicy("knock-lambda-kindle-policy", {
    role: role.id,
    policy: policyJson(args.kindle.statements),
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
      // The names the function reads (lambda/src/config.ts); the image sets the tools folder itself.
      variables: {
        [FUNCTION_ENV.outputBucket]: args.outputBucket.id,
        [FUNCTION_ENV.deviceBucket]: args.deviceBucket.id,
        [FUNCTION_ENV.downloadUrlExpirySeconds]: String(config.downloadUrlExpirySeconds),
        [FUNCTION_ENV.functionUrlAuth]: config.functionUrlAuth,
        // Only the hash: reading the function's configuration gives nothing that opens the service.
        ...(tokenMode ? { [FUNCTION_ENV.accessTokenSha256]: args.accessTokenSha256 } : {}),
        ...(args.opdsFeedTokenSha256 === undefined ? {} : { [FUNCTION_ENV.opdsFeedTokenSha256]: args.opdsFeedTokenSha256 }),
        // The addresses and the parameter's name; never the SMTP URL itself.
        ...args.kindle?.environment,
      },
    },
  }, {
    ...opts,
    // The first request must not fail for want of permissions that are still being attached.
    dependsOn: [logsPolicy, s3Policy, ...(kindlePolicy === undefined ? [] : [kindlePolicy])],
  });

  const functionUrl = new aws.lambda.FunctionUrl("knock-lambda-url", {
    functionName: fn.name,
    // TOKEN: the URL is public and the handler itself asks for the token.
    authorizationType: tokenMode ? "NONE" : config.functionUrlAuth,
    cors: {
      allowOrigins: ["*"],
      // Every method a route of the function's table answers (GET, POST, DELETE).
      allowMethods: corsMethods(),
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
