import { PutObjectCommand, paginateListObjectsV2, type S3Client } from "@aws-sdk/client-s3";
import { deleteIfMatch, putIfAbsent, readObject, type ConditionalDelete } from "./s3-conditional";

export type { ConditionalDelete } from "./s3-conditional";

/**
 * Where loan tokens are kept in the device bucket: beside the device they belong to, under the
 * prefix the role's `adept/*` grant already covers (infra/conversion-function.ts).
 */
export const LOANS_PREFIX = "adept/loans/";

/**
 * A loan's id as libgourou names it: the first 16 hex digits of SHA-1(loan id), lower case
 * (utils/acsmdownloader.cpp serializeLoanToken, ByteArray::toHex). It becomes a file name and an
 * object key, so nothing else is ever accepted.
 */
export const LOAN_ID_PATTERN = /^[0-9a-f]{16}$/;

/** Object key of a stored loan token. */
export function loanKey(id: string): string {
  return `${LOANS_PREFIX}${id}.xml`;
}

/** Object key of the marker a return holds while it runs (so two returns never both talk to the library). */
export function returnMarkerKey(id: string): string {
  return `${LOANS_PREFIX}${id}.returning`;
}

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

/** {@link LoanStore} on the device bucket, under {@link LOANS_PREFIX}. */
export function s3LoanStore(s3: S3Client, bucket: string): LoanStore {
  const tokenKey = new RegExp(`^${LOANS_PREFIX}([0-9a-f]{16})\\.xml$`);

  return {
    async list() {
      const out: LoanListEntry[] = [];
      for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: LOANS_PREFIX })) {
        for (const object of page.Contents ?? []) {
          const id = tokenKey.exec(object.Key ?? "")?.[1];
          if (id !== undefined) out.push({ id, storedAt: object.LastModified ?? new Date(0) });
        }
      }
      return out;
    },
    async get(id) {
      const found = await readObject(s3, bucket, loanKey(id));
      return found && { id, xml: found.body, etag: found.etag };
    },
    async put(id, xml) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: loanKey(id), Body: xml, ContentType: "application/xml" }));
    },
    removeIfUnchanged: (id, etag) => deleteIfMatch(s3, bucket, loanKey(id), etag),
    // A 412 (or 409) means another return holds the marker, which for the caller is the same thing.
    createMarker: (id, body) => putIfAbsent(s3, bucket, returnMarkerKey(id), body, "application/json"),
    readMarker: (id) => readObject(s3, bucket, returnMarkerKey(id)),
    removeMarker: (id, etag) => deleteIfMatch(s3, bucket, returnMarkerKey(id), etag),
  };
}
