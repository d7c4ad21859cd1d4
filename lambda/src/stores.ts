import type { S3Client } from "@aws-sdk/client-s3";
import type { HandlerConfig } from "./config";
import { s3DeviceStore, type DeviceStore } from "./device";
import { s3LoanStore, type LoanStore } from "./loan-store";
import { s3OutputStore, type OutputStore } from "./output-store";

/** Where the handler keeps what it stores: the device and the loans in one bucket, the books in the other. */
export interface HandlerStores {
  readonly device: DeviceStore;
  readonly output: OutputStore;
  readonly loans: LoanStore;
}

/** The stores on the deployment's two S3 buckets. */
export function s3Stores(s3: S3Client, config: Pick<HandlerConfig, "deviceBucket" | "outputBucket">): HandlerStores {
  return { device: s3DeviceStore(s3, config.deviceBucket), output: s3OutputStore(s3, config.outputBucket), loans: s3LoanStore(s3, config.deviceBucket) };
}
