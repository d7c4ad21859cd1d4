import { createReadStream } from "node:fs";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

/** Where converted books go and how callers get them. */
export interface OutputStore {
  /** Streams the file at `path` to `key` (never holding the whole book in memory). */
  upload(key: string, path: string, contentType: string): Promise<void>;
  /** A GET URL valid for `expirySeconds` that downloads as an attachment named `filename`. */
  presign(key: string, filename: string, contentType: string, expirySeconds: number): Promise<string>;
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
    presign(key, filename, contentType, expirySeconds) {
      return getSignedUrl(
        s3,
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ResponseContentDisposition: contentDisposition(filename),
          ResponseContentType: contentType,
        }),
        { expiresIn: expirySeconds },
      );
    },
  };
}
