import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { KnockConfig } from "../config";

/** The three private buckets of the service. */
export interface Storage {
  /** Holds `source.zip`, the Docker build context CodeBuild reads. */
  readonly sourceBucket: aws.s3.Bucket;
  /** Holds converted books until they expire; callers reach them only through presigned URLs. */
  readonly outputBucket: aws.s3.Bucket;
  /** Holds the Adobe device credentials, shared by every cold start so the service uses one device. */
  readonly deviceBucket: aws.s3.Bucket;
}

/** Creates the buckets: each private, TLS-only and auto-named (bucket names are global). */
export function createStorage(config: KnockConfig, opts?: pulumi.CustomResourceOptions): Storage {
  const sourceBucket = createPrivateBucket("knock-source-bucket", opts);

  const outputBucket = createPrivateBucket("knock-output-bucket", opts);
  // Converted books are only fetched once, right after conversion: expire them, and don't pay for
  // the parts of uploads a timed-out invocation left behind.
  new aws.s3.BucketLifecycleConfiguration("knock-output-bucket-lifecycle", {
    bucket: outputBucket.id,
    rules: [
      {
        id: "expire-converted-books",
        status: "Enabled",
        filter: { prefix: "" },
        expiration: { days: config.outputBucketLifecycleDays },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
      },
    ],
  }, opts);

  // The Adobe device is the user's identity, not something derived: each new activation spends one
  // of the distributor's limited device slots, and books fulfilled for it open only with it. So
  // `pulumi destroy` keeps its bucket (retainOnDelete: removed from the stack, left in AWS) together
  // with what keeps it private and TLS-only and its versions; the README's Cleanup says how a new
  // deployment takes the device over.
  const kept = { ...opts, retainOnDelete: true };
  const deviceBucket = createPrivateBucket("knock-device-bucket", kept);
  // Versioned so an accidental overwrite or delete of the device never loses it.
  new aws.s3.BucketVersioning("knock-device-bucket-versioning", {
    bucket: deviceBucket.id,
    versioningConfiguration: { status: "Enabled" },
  }, kept);

  return { sourceBucket, outputBucket, deviceBucket };
}

/** A bucket that blocks every form of public access and refuses requests that are not over TLS. */
function createPrivateBucket(name: string, opts?: pulumi.CustomResourceOptions): aws.s3.Bucket {
  // forceDestroy: `pulumi destroy` must not stop at a non-empty bucket. The source and output buckets
  // hold only what is derived or disposable; the device bucket is never deleted (retainOnDelete), and
  // keeps the flag only so that a stack deployed before that choice sees no change of inputs.
  const bucket = new aws.s3.Bucket(name, { forceDestroy: true }, opts);
  const publicAccessBlock = new aws.s3.BucketPublicAccessBlock(`${name}-public-access`, {
    bucket: bucket.id,
    blockPublicAcls: true,
    blockPublicPolicy: true,
    ignorePublicAcls: true,
    restrictPublicBuckets: true,
  }, opts);
  // S3 rejects concurrent configuration changes to one bucket ("OperationAborted"), so the policy
  // waits for the public-access block although no data flows between them.
  new aws.s3.BucketPolicy(`${name}-tls-only`, {
    bucket: bucket.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [{
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      }],
    }),
  }, { ...opts, dependsOn: [publicAccessBlock] });
  return bucket;
}
