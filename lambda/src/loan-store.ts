import { LOAN_ID_PATTERN, LOANS_PREFIX, loanKey, returnMarkerKey } from "./contract";
import type { ConditionalDelete, ObjectStore } from "./object-store";

export type { ConditionalDelete } from "./object-store";

/** A stored loan token and the version (ETag) it was read at. */
export interface StoredLoanToken {
  readonly id: string;
  readonly xml: string;
  readonly etag: string;
}

/** One entry of {@link LoanStore.list}. */
export interface LoanListEntry {
  readonly id: string;
  /** When the token was stored (S3 LastModified), i.e. when the book was fulfilled. */
  readonly storedAt: Date;
}

/**
 * Persistence of loan tokens, with S3's semantics (Amazon S3 User Guide, "Conditional requests"):
 * versions are ETags, a create-if-absent fails when the key exists, a delete with an ETag fails
 * when the object changed or is gone. The stored loans outlive containers (a cold start lists them).
 */
export interface LoanStore {
  /** Every stored token's id (markers and other objects are skipped), in no particular order. */
  list(): Promise<LoanListEntry[]>;
  /** The stored token, or undefined when there is none. */
  get(id: string): Promise<StoredLoanToken | undefined>;
  /** Stores (or replaces) a token. */
  put(id: string, xml: string): Promise<void>;
  /** Deletes the token only if it is still version `etag`. */
  removeIfUnchanged(id: string, etag: string): Promise<ConditionalDelete>;
  /** Creates the return marker unless one exists: its ETag, or undefined when another exists. */
  createMarker(id: string, body: string): Promise<string | undefined>;
  /** The current return marker, or undefined. */
  readMarker(id: string): Promise<{ readonly body: string; readonly etag: string } | undefined>;
  /** Deletes the return marker only if it is still version `etag`. */
  removeMarker(id: string, etag: string): Promise<ConditionalDelete>;
}

/** The id of the token stored at `key`, or undefined for any other key (a marker, a stray object). */
function tokenId(key: string): string | undefined {
  const id = key.startsWith(LOANS_PREFIX) && key.endsWith(".xml") ? key.slice(LOANS_PREFIX.length, -".xml".length) : undefined;
  return id !== undefined && LOAN_ID_PATTERN.test(id) && loanKey(id) === key ? id : undefined;
}

/** {@link LoanStore} on the device bucket's objects: tokens at {@link loanKey}, markers at {@link returnMarkerKey}. */
export function loanStore(objects: ObjectStore): LoanStore {
  return {
    async list() {
      const out: LoanListEntry[] = [];
      for (const object of await objects.list(LOANS_PREFIX)) {
        const id = tokenId(object.key);
        if (id !== undefined) out.push({ id, storedAt: object.lastModified });
      }
      return out;
    },
    async get(id) {
      const found = await objects.get(loanKey(id));
      return found && { id, xml: found.body.toString("utf8"), etag: found.etag };
    },
    put: (id, xml) => objects.put(loanKey(id), xml, "application/xml"),
    removeIfUnchanged: (id, etag) => objects.deleteIfMatch(loanKey(id), etag),
    // "exists" means another return holds the marker, which for the caller is the same thing.
    async createMarker(id, body) {
      const created = await objects.putIfAbsent(returnMarkerKey(id), body, "application/json");
      return created === "exists" ? undefined : created.etag;
    },
    async readMarker(id) {
      const found = await objects.get(returnMarkerKey(id));
      return found && { body: found.body.toString("utf8"), etag: found.etag };
    },
    removeMarker: (id, etag) => objects.deleteIfMatch(returnMarkerKey(id), etag),
  };
}
