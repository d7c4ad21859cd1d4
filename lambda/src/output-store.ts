import { OUTPUT_PREFIX } from "./contract";
import type { ObjectStore, PresignedUrl } from "./object-store";

export { contentDisposition, type PresignedUrl } from "./object-store";

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

/** Refuses a key outside {@link OUTPUT_PREFIX}: the role may write nothing else in the output bucket. */
function bookKey(key: string): string {
  if (!key.startsWith(OUTPUT_PREFIX) || key.length === OUTPUT_PREFIX.length) throw new Error(`not a converted book's key: ${key}`);
  return key;
}

/**
 * {@link OutputStore} on the output bucket's objects: books under {@link OUTPUT_PREFIX} (keys made
 * with the contract's outputKey), uploaded as a stream and handed out as presigned GET links.
 */
export function outputStore(objects: ObjectStore): OutputStore {
  return {
    upload: async (key, path, contentType) => objects.upload(bookKey(key), path, contentType),
    presign: async (key, filename, contentType, expirySeconds) => objects.presignGet(bookKey(key), filename, contentType, expirySeconds),
  };
}
