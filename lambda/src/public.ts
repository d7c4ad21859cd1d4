/**
 * The function's public surface: the only module the Pulumi program (infra/, config.ts, index.ts),
 * the `knock` client (client/) and the scripts import from lambda/src — an ESLint rule
 * (eslint.config.mjs) refuses deep imports. Everything here is a contract; anything else in
 * lambda/src may be renamed freely.
 */

// The contract: settings, function env, storage key layout, wire shapes, routes.
export * from "./contract";

// The handler, as `knock serve` runs it on its own stores (createHandler(options, seams)).
export { createHandler, type HandlerOptions, type HandlerSeams } from "./handler";
export type { Handler, HandlerContext, HandlerResult } from "./answer";
export type { HandlerConfig } from "./config";
export { tokenSha256 } from "./access";

// Where the handler stores: its stores on two object stores, and the object-store port with S3's rules.
export { storesOn, type HandlerStores } from "./stores";
export {
  contentDisposition,
  s3Objects,
  type ConditionalCreate,
  type ConditionalDelete,
  type ConditionalReplace,
  type ListedObject,
  type ObjectStore,
  type PresignedUrl,
  type StoredObject,
} from "./object-store";
// The S3 client s3Objects takes, from the function's own copy of the SDK: the paginator checks its
// client with instanceof, so a client built from another copy (the root's) is refused.
export { S3Client } from "@aws-sdk/client-s3";

// What the client recognises in a file before sending it (the same words the service uses).
export { otherFileKind } from "./acsm";

// What `knock inspect` reads in an ACSM without sending it: the handler's own checks, and the errors they throw.
export { describeAcsm, hasExpired, type AcsmDescription, type AcsmInfo } from "./acsm";
export { ServiceError } from "./errors";
export type { OtherFileKind } from "./errors";

// The Adobe device as `knock device` reads, checks and stores it: the handler's own document format.
export {
  checkDeviceFiles,
  DEVICE_FILES,
  DEVICE_KEY_SIZE,
  DeviceFileProblem,
  encodeDevice,
  readDeviceDocument,
  type DeviceDocument,
  type DeviceFiles,
  type DeviceOrigin,
  type DeviceSummary,
} from "./device";

// Zips read from users (device imports, EPUBs) with limits, and written for them (device exports, EPUB copies).
export { readZip, writeZip, ZipProblem, type ZipEntry, type ZipReadLimits, type ZipWriteEntry } from "./zip";

// Send to Kindle's rules for its settings, shared by the stack's config check and knock serve.
export { kindleAddressProblem, smtpUrlProblem } from "./kindle/mail-rules";
