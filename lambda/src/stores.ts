import type { S3Client } from "@aws-sdk/client-s3";
import type { HandlerConfig } from "./config";
import { deviceStore, type DeviceStore } from "./device";
import { loanStore, type LoanStore } from "./loan-store";
import { s3Objects, type ObjectStore } from "./object-store";
import { outputStore, type OutputStore } from "./output-store";

/** Where the handler keeps what it stores: the device and the loans in one bucket, the books in the other. */
export interface HandlerStores {
  readonly device: DeviceStore;
  readonly output: OutputStore;
  readonly loans: LoanStore;
}

/**
 * The handler's stores on two object stores: the device bucket's (the device, its backups, the loan
 * tokens) and the output bucket's (the books). Keys are the contract's storage layout, built only by
 * the stores; `knock serve` passes its data folder's object stores here.
 */
export function storesOn(deviceObjects: ObjectStore, outputObjects: ObjectStore): HandlerStores {
  return { device: deviceStore(deviceObjects), output: outputStore(outputObjects), loans: loanStore(deviceObjects) };
}

/** The stores on the deployment's two S3 buckets. */
export function s3Stores(s3: S3Client, config: Pick<HandlerConfig, "deviceBucket" | "outputBucket">): HandlerStores {
  return storesOn(s3Objects(s3, config.deviceBucket), s3Objects(s3, config.outputBucket));
}
