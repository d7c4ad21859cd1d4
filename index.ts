// knock-lambda: ACSM in, DRM-free EPUB/PDF download link out — on the deployer's own AWS account.
//
//   source.zip ──► S3 source bucket ──► CodeBuild ──► ECR (digest) ──► Lambda ──► Function URL
//                                                                        │  ▲
//                           output bucket (presigned links) ◄────────────┘  └── device bucket
//
// Every building block is a plain function in infra/; this file only wires them together.
import { loadConfig } from "./config";
import { accessUrl, createAccessToken } from "./infra/access-token";
import { createConversionFunction } from "./infra/conversion-function";
import { createImagePipeline } from "./infra/image-pipeline";
import { createKindleMail } from "./infra/kindle-mail";
import { createOpdsFeedToken, opdsFeedUrl } from "./infra/opds-feed-token";
import { createStorage } from "./infra/storage";

// Validated first: a bad value stops the program before any resource is registered.
const config = loadConfig();

// Private, TLS-only buckets: build context in, converted books out, Adobe device kept.
const storage = createStorage(config);

// Zip the build context, let CodeBuild build and push the image, and pin the function to its digest.
const image = createImagePipeline(config, { sourceBucket: storage.sourceBucket });

// TOKEN mode only: a 256-bit access token kept as a Pulumi secret; the function gets its hash.
const access = createAccessToken(config);

// TOKEN and NONE mode: the OPDS feed's own 256-bit secret, the path e-reader apps open.
const feed = createOpdsFeedToken(config);

// Send to Kindle, when kindle_address is set: the SMTP URL in an SSM SecureString only the function reads.
const kindle = createKindleMail(config);

// The converter itself: log group first, least-privilege role, container function, Function URL.
const service = createConversionFunction(config, {
  imageUri: image.imageUri,
  outputBucket: storage.outputBucket,
  deviceBucket: storage.deviceBucket,
  accessTokenSha256: access?.sha256,
  opdsFeedTokenSha256: feed?.sha256,
  kindle,
});

// Stack outputs (names kept from the original, plus the device bucket and the pinned image).
export const ecr_repository_url = image.repository.repositoryUrl;
export const lambda_function_name = service.function.name;
export const lambda_function_arn = service.function.arn;
export const function_url = service.functionUrl.functionUrl;
export const source_bucket = storage.sourceBucket.id;
export const output_bucket = storage.outputBucket.id;
export const device_credentials_bucket = storage.deviceBucket.id;
export const codebuild_project_name = image.buildProject.name;
export const codebuild_run_id = image.buildId;
export const image_uri = image.imageUri;
// TOKEN mode only, both secret: `pulumi stack output access_url --show-secrets`. null in the other
// modes (an undefined export would make every `pulumi up` warn that it is not shown).
export const access_token = access ? access.token : null;
export const access_url = access ? accessUrl(service.functionUrl.functionUrl, access.token) : null;
// TOKEN and NONE mode, secret: the OPDS feed's address for e-reader apps (`knock open --opds`). null in AWS_IAM mode.
export const opds_feed_url = feed ? opdsFeedUrl(service.functionUrl.functionUrl, feed.token) : null;
