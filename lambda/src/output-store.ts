import { ACSM_IDENTITY_PATTERN, OUTPUT_PREFIX, acsmClaimKey, acsmIndexKey, outputKey, type ConversionLoan } from "./contract";
import type { ObjectHead, ObjectStore, PresignedUrl } from "./object-store";

export { contentDisposition, type PresignedUrl } from "./object-store";

/** A book kept in the output bucket: its key and the link callers download it with. */
export interface KeptBook extends PresignedUrl {
  /** `converted/<request id>/<filename>`: the request's own folder (the role may write nothing else). */
  readonly key: string;
}

/** What is remembered of the book last converted from one ACSM (the object at the contract's acsmIndexKey). */
export interface ConvertedRecord {
  /** The book's object key, `converted/<request id>/<filename>`. */
  readonly key: string;
  readonly filename: string;
  readonly content_type: string;
  readonly size_bytes: number;
  /** When the book was stored (ISO 8601). */
  readonly stored_at: string;
  /** The first answer's `loan`, for a loaned book. */
  readonly loan?: ConversionLoan;
}

/** A claim's body as read, with the version (ETag) it was read at. */
export interface ClaimRead {
  readonly body: string;
  readonly etag: string;
}

/**
 * The books already converted, by ACSM identity (64 hex; see reuse.ts), and the claims that keep two
 * identical requests from both converting — with S3's conditional-write rules. Everything is under
 * `converted/` (the only prefix the role may touch in the output bucket) and nothing is ever deleted:
 * a claim is released by overwriting it, and the bucket's lifecycle expires all of it with the books.
 */
export interface ReuseIndex {
  /** The record for this identity, or undefined when there is none or it cannot be read. */
  read(identity: string): Promise<ConvertedRecord | undefined>;
  /** Stores (or replaces) the record for this identity. */
  write(identity: string, record: ConvertedRecord): Promise<void>;
  /** The book at `key` while it is still stored (the lifecycle may have expired it), with when the lifecycle will. */
  book(key: string): Promise<ObjectHead | undefined>;
  /** A fresh GET link to a stored book, as {@link OutputStore.keep} gives. */
  link(key: string, filename: string, contentType: string, expirySeconds: number): Promise<KeptBook>;
  /** Creates the claim unless one exists (`If-None-Match: *`): its ETag, or undefined when one exists. */
  createClaim(identity: string, body: string): Promise<string | undefined>;
  /** The current claim, or undefined. */
  readClaim(identity: string): Promise<ClaimRead | undefined>;
  /** Replaces the claim only if it is still version `etag` (`If-Match`): the new ETag, or undefined when it changed or is gone. */
  replaceClaim(identity: string, etag: string, body: string): Promise<string | undefined>;
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
  /** The index of converted ACSMs; a store without one (a test's stand-in) converts every request. */
  readonly reuse?: ReuseIndex;
}

function checkIdentity(identity: string): string {
  if (!ACSM_IDENTITY_PATTERN.test(identity)) throw new Error(`not an ACSM identity: ${identity.slice(0, 80)}`);
  return identity;
}

/** The record stored at an index key, when it is one this code wrote (a book under `converted/<request id>/`). */
function parseRecord(body: Buffer): ConvertedRecord | undefined {
  try {
    const r = JSON.parse(body.toString("utf8")) as Partial<ConvertedRecord>;
    const ok =
      typeof r.key === "string" && r.key.startsWith(OUTPUT_PREFIX) && r.key.split("/").length === 3 &&
      typeof r.filename === "string" && typeof r.content_type === "string" &&
      typeof r.size_bytes === "number" && typeof r.stored_at === "string";
    return ok ? (r as ConvertedRecord) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * {@link OutputStore} on the output bucket's objects: each book under its request's folder
 * (the contract's outputKey, the only place its key is made), handed out as a presigned GET link;
 * the reuse index beside them (acsmIndexKey, acsmClaimKey).
 */
export function outputStore(objects: ObjectStore): OutputStore {
  const link = async (key: string, filename: string, contentType: string, expirySeconds: number): Promise<KeptBook> => ({
    key,
    ...(await objects.presignGet(key, filename, contentType, expirySeconds)),
  });
  return {
    async keep(requestId, filename, path, contentType, expirySeconds) {
      const key = outputKey(requestId, filename);
      await objects.upload(key, path, contentType);
      return link(key, filename, contentType, expirySeconds);
    },
    reuse: {
      async read(identity) {
        const found = await objects.get(acsmIndexKey(checkIdentity(identity)));
        return found && parseRecord(found.body);
      },
      write: (identity, record) => objects.put(acsmIndexKey(checkIdentity(identity)), JSON.stringify(record), "application/json"),
      book: (key) => objects.head(key),
      link,
      async createClaim(identity, body) {
        const created = await objects.putIfAbsent(acsmClaimKey(checkIdentity(identity)), body, "application/json");
        return created === "exists" ? undefined : created.etag;
      },
      async readClaim(identity) {
        const found = await objects.get(acsmClaimKey(checkIdentity(identity)));
        return found && { body: found.body.toString("utf8"), etag: found.etag };
      },
      async replaceClaim(identity, etag, body) {
        const replaced = await objects.putIfMatch(acsmClaimKey(checkIdentity(identity)), etag, body, "application/json");
        return typeof replaced === "string" ? undefined : replaced.etag;
      },
    },
  };
}
