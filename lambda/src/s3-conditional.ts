import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3ServiceException,
  type S3Client,
} from "@aws-sdk/client-s3";

// The S3 requests the device and loan stores make, with S3's rules for conditional requests in one
// place (Amazon S3 User Guide, "Conditional requests"; conditional deletes on general purpose
// buckets since 2025-09-16):
//   PUT    If-None-Match: *   412 PreconditionFailed when the key exists
//   PUT    If-Match: <ETag>   412 when the current object has another ETag, 404 NoSuchKey when none
//   DELETE If-Match: <ETag>   412 when the current object has another ETag, 404 NoSuchKey when none
//   any conditional request   409 ConditionalRequestConflict while a conflicting one is in flight
// A conditional delete with an ETag needs s3:GetObject besides s3:DeleteObject (the role has both).

/** The outcome of a delete conditioned on an ETag: done, another version is stored, or nothing is. */
export type ConditionalDelete = "removed" | "changed" | "absent";

/** The outcome of a write conditioned on an ETag: the new version's ETag, or why nothing was written. */
export type ConditionalReplace = { readonly etag: string } | "changed" | "absent";

/** An object's body and the version (ETag) it was read at. */
export interface VersionedObject {
  readonly body: string;
  readonly etag: string;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

/** Reads an object, or undefined when the key does not exist. */
export async function readObject(s3: S3Client, bucket: string, key: string): Promise<VersionedObject | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { body: await res.Body!.transformToString("utf8"), etag: res.ETag ?? "" };
  } catch (err) {
    if (err instanceof NoSuchKey || statusOf(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Writes an object unless the key exists (`If-None-Match: *`): its ETag, or undefined when another
 * writer got there first — 412, or 409 while that writer's conditional write is still in flight.
 */
export async function putIfAbsent(s3: S3Client, bucket: string, key: string, body: string, contentType: string): Promise<string | undefined> {
  try {
    const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType, IfNoneMatch: "*" }));
    return res.ETag ?? "";
  } catch (err) {
    if (statusOf(err) === 412 || statusOf(err) === 409) return undefined;
    throw err;
  }
}

/**
 * Sends a request conditioned on `If-Match: <ETag>` and reads S3's answer the same way for any such
 * request: 412 → "changed", 404 → "absent", and 409 (a conflicting conditional request in flight) is
 * retried a few times with a growing pause.
 */
async function ifMatch<T>(send: () => Promise<T>): Promise<T | "changed" | "absent"> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (statusOf(err) === 412) return "changed";
      if (statusOf(err) === 404 || err instanceof NoSuchKey) return "absent";
      if (statusOf(err) === 409 && attempt < 5) {
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        continue;
      }
      throw err;
    }
  }
}

/** Deletes an object only if it is still version `etag` (`If-Match`); a 409 conflict is retried. */
export function deleteIfMatch(s3: S3Client, bucket: string, key: string, etag: string): Promise<ConditionalDelete> {
  return ifMatch(async () => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: etag }));
    return "removed" as const;
  });
}

/** Replaces an object only if it is still version `etag` (`If-Match`); a 409 conflict is retried. */
export function putIfMatch(s3: S3Client, bucket: string, key: string, etag: string, body: string, contentType: string): Promise<ConditionalReplace> {
  return ifMatch(async () => {
    const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType, IfMatch: etag }));
    return { etag: res.ETag ?? "" };
  });
}
