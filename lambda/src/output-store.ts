import { outputKey } from "./contract";
import type { ObjectStore, PresignedUrl } from "./object-store";

export { contentDisposition, type PresignedUrl } from "./object-store";

/** A book kept in the output bucket: its key and the link callers download it with. */
export interface KeptBook extends PresignedUrl {
  /** `converted/<request id>/<filename>`: the request's own folder (the role may write nothing else). */
  readonly key: string;
}

/** Where converted books go and how callers get them. */
export interface OutputStore {
  /**
   * Streams the file at `path` (never holding the whole book in memory) to this request's own key,
   * and returns a GET URL valid for `expirySeconds` that downloads as an attachment named
   * `filename`, with when it stops working: a presigned URL is only valid while the credentials
   * that signed it are, so the earlier of the two (on Lambda these are the role's temporary ones).
   */
  keep(requestId: string, filename: string, path: string, contentType: string, expirySeconds: number): Promise<KeptBook>;
}

/**
 * {@link OutputStore} on the output bucket's objects: each book under its request's folder
 * (the contract's outputKey, the only place its key is made), handed out as a presigned GET link.
 */
export function outputStore(objects: ObjectStore): OutputStore {
  return {
    async keep(requestId, filename, path, contentType, expirySeconds) {
      const key = outputKey(requestId, filename);
      await objects.upload(key, path, contentType);
      return { key, ...(await objects.presignGet(key, filename, contentType, expirySeconds)) };
    },
  };
}
