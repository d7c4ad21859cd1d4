import { createReadStream } from "node:fs";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3ServiceException,
  paginateListObjectsV2,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

// The object store the function's stores are written on (device.ts, loan-store.ts, output-store.ts):
// the few requests they make, with S3's semantics, so the function on its buckets and `knock serve`
// on its data folder behave alike. The rules, as S3 defines them (Amazon S3 User Guide,
// "Conditional requests"; conditional deletes on general purpose buckets since 2025-09-16):
//   GET                        404 NoSuchKey when the key does not exist (here: undefined)
//   HEAD                       the same, without the body (here: undefined); a lifecycle rule that
//                              will expire the object shows as `x-amz-expiration: expiry-date="…"`
//   PUT                        replaces whatever is stored; the ETag of a single-part PUT is the
//                              quoted hex MD5 of the bytes
//   PUT    If-None-Match: *    412 PreconditionFailed when the key exists (here: "exists")
//   PUT    If-Match: <ETag>    412 when the current object has another ETag ("changed"), 404
//                              NoSuchKey when there is none ("absent")
//   DELETE If-Match: <ETag>    412 when the current object has another ETag ("changed"), 404
//                              NoSuchKey when there is none ("absent")
//   DELETE                     succeeds whether or not the key exists (204)
//   any conditional request    409 ConditionalRequestConflict while a conflicting one is in flight
//                              (a create reads it as "exists"; an If-Match request retries)
// A conditional delete with an ETag needs s3:GetObject besides s3:DeleteObject (the role has both).
// Keys are the contract's (contract/storage-layout.ts); only the stores build them.

/** An object's bytes and the version (ETag) they were read at. */
export interface StoredObject {
  readonly body: Buffer;
  readonly etag: string;
}

/** One entry of {@link ObjectStore.list}. */
export interface ListedObject {
  readonly key: string;
  /** S3's LastModified: when the object was last written. */
  readonly lastModified: Date;
  /** S3's Size, in bytes. */
  readonly size: number;
}

/** {@link ObjectStore.head}: an object's metadata. */
export interface ObjectHead {
  /** S3's LastModified. */
  readonly lastModified: Date;
  /** When a lifecycle rule will expire the object (S3's `x-amz-expiration`), when one will. */
  readonly expiresAt?: Date;
  /** The object's user metadata (`x-amz-meta-*`, names in lower case), as written with it. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The date in S3's `x-amz-expiration` header (`expiry-date="Fri, 23 Dec 2026 00:00:00 GMT", rule-id="…"`). */
export function lifecycleExpiry(header: string | undefined): Date | undefined {
  const date = header === undefined ? undefined : /expiry-date="([^"]+)"/.exec(header)?.[1];
  const at = date === undefined ? Number.NaN : Date.parse(date);
  return Number.isNaN(at) ? undefined : new Date(at);
}

/** The outcome of a create conditioned on `If-None-Match: *`: the new version, or "exists" when the key was taken. */
export type ConditionalCreate = { readonly etag: string } | "exists";

/** The outcome of a write conditioned on an ETag: the new version's ETag, or why nothing was written. */
export type ConditionalReplace = { readonly etag: string } | "changed" | "absent";

/** The outcome of a delete conditioned on an ETag: done, another version is stored, or nothing is. */
export type ConditionalDelete = "removed" | "changed" | "absent";

/** A presigned download link and the moment it stops working. */
export interface PresignedUrl {
  readonly url: string;
  readonly expiresAt: Date;
}

/** The port: one bucket's objects, with S3's rules (see the table above). */
export interface ObjectStore {
  /** The object, or undefined when the key does not exist. */
  get(key: string): Promise<StoredObject | undefined>;
  /** What is known of the object without reading it (`HEAD`), or undefined when the key does not exist. */
  head(key: string): Promise<ObjectHead | undefined>;
  /** Stores (or replaces) an object. */
  put(key: string, body: string | Buffer, contentType: string): Promise<void>;
  /** Stores an object unless the key exists (`If-None-Match: *`). */
  putIfAbsent(key: string, body: string | Buffer, contentType: string): Promise<ConditionalCreate>;
  /** Replaces an object only if it is still version `etag` (`If-Match`). */
  putIfMatch(key: string, etag: string, body: string | Buffer, contentType: string): Promise<ConditionalReplace>;
  /** Deletes an object only if it is still version `etag` (`If-Match`). */
  deleteIfMatch(key: string, etag: string): Promise<ConditionalDelete>;
  /** Deletes an object; a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (at any depth), in no particular order. */
  list(prefix: string): Promise<ListedObject[]>;
  /**
   * Streams the file at `path` to `key`, never holding the whole file in memory, with user metadata
   * (S3: `x-amz-meta-<name>`; US-ASCII values, at most 2 KB in all — the caller encodes).
   */
  upload(key: string, path: string, contentType: string, metadata?: Readonly<Record<string, string>>): Promise<void>;
  /**
   * A GET link for `key`, working without credentials for `expirySeconds`, that downloads as an
   * attachment named `filename` with `contentType` — and when it stops working, which may be earlier
   * (a presigned URL is only valid while the credentials that signed it are).
   */
  presignGet(key: string, filename: string, contentType: string, expirySeconds: number): Promise<PresignedUrl>;
}

/**
 * `Content-Disposition: attachment` with the book's name, readable by every browser: a quoted
 * ASCII fallback plus the exact UTF-8 name in RFC 5987 `filename*`.
 */
export function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
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

/** {@link ObjectStore} on an S3 bucket. */
export function s3Objects(s3: S3Client, bucket: string): ObjectStore {
  return {
    async get(key) {
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return { body: Buffer.from(await res.Body!.transformToByteArray()), etag: res.ETag ?? "" };
      } catch (err) {
        if (err instanceof NoSuchKey || statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    async head(key) {
      try {
        const res = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        const expiresAt = lifecycleExpiry(res.Expiration);
        return {
          lastModified: res.LastModified ?? new Date(0),
          ...(expiresAt === undefined ? {} : { expiresAt }),
          ...(res.Metadata === undefined ? {} : { metadata: res.Metadata }),
        };
      } catch (err) {
        // A HEAD answers a bare 404 (no body, so no NoSuchKey code): the status says it.
        if (err instanceof NoSuchKey || statusOf(err) === 404 || (err as { name?: string }).name === "NotFound") return undefined;
        throw err;
      }
    },
    async put(key, body, contentType) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    },
    async putIfAbsent(key, body, contentType) {
      try {
        const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType, IfNoneMatch: "*" }));
        return { etag: res.ETag ?? "" };
      } catch (err) {
        // 412: another writer got there first; 409: its conditional write is still in flight.
        if (statusOf(err) === 412 || statusOf(err) === 409) return "exists";
        throw err;
      }
    },
    putIfMatch: (key, etag, body, contentType) =>
      ifMatch(async () => {
        const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType, IfMatch: etag }));
        return { etag: res.ETag ?? "" };
      }),
    deleteIfMatch: (key, etag) =>
      ifMatch(async () => {
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: etag }));
        return "removed" as const;
      }),
    async delete(key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async list(prefix) {
      const out: ListedObject[] = [];
      for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined) out.push({ key: object.Key, lastModified: object.LastModified ?? new Date(0), size: object.Size ?? 0 });
        }
      }
      return out;
    },
    async upload(key, path, contentType, metadata) {
      // 8 MiB parts, 2 in flight: bounded memory (~16 MiB of buffers) whatever the book's size.
      const upload = new Upload({
        client: s3,
        params: { Bucket: bucket, Key: key, Body: createReadStream(path), ContentType: contentType, ...(metadata === undefined ? {} : { Metadata: { ...metadata } }) },
        partSize: 8 * 1024 * 1024,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await upload.done();
    },
    async presignGet(key, filename, contentType, expirySeconds) {
      // The signing credentials as the presigner will resolve them (the SDK caches them and renews
      // them ahead of their expiration, so these are the ones that sign this URL).
      const credentials = await s3.config.credentials();
      const signedAt = Date.now();
      const url = await getSignedUrl(
        s3,
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ResponseContentDisposition: contentDisposition(filename),
          ResponseContentType: contentType,
        }),
        { expiresIn: expirySeconds },
      );
      const byExpiry = signedAt + expirySeconds * 1000;
      const byCredentials = credentials.expiration?.getTime() ?? Infinity;
      return { url, expiresAt: new Date(Math.min(byExpiry, byCredentials)) };
    },
  };
}
