import { createReadStream } from "node:fs";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

/** Where converted books go and how callers get them. */
export interface OutputStore {
  /** Streams the file at `path` to `key` (never holding the whole book in memory). */
  upload(key: string, path: string, contentType: string): Promise<void>;
  /**
   * A GET URL valid for `expirySeconds` that downloads as an attachment named `filename`, and when
   * it stops working: a presigned URL is only valid while the credentials that signed it are, so
   * the earlier of the two (on Lambda these are the role's temporary credentials).
   */
  presign(key: string, filename: string, contentType: string, expirySeconds: number): Promise<PresignedUrl>;
}

/** A presigned download link and the moment it stops working. */
export interface PresignedUrl {
  readonly url: string;
  readonly expiresAt: Date;
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

/** {@link OutputStore} on an S3 bucket: multipart streaming upload and presigned GetObject. */
export function s3OutputStore(s3: S3Client, bucket: string): OutputStore {
  return {
    async upload(key, path, contentType) {
      // 8 MiB parts, 2 in flight: bounded memory (~16 MiB of buffers) whatever the book's size.
      const upload = new Upload({
        client: s3,
        params: { Bucket: bucket, Key: key, Body: createReadStream(path), ContentType: contentType },
        partSize: 8 * 1024 * 1024,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await upload.done();
    },
    async presign(key, filename, contentType, expirySeconds) {
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
