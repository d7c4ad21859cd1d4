import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3ServiceException,
  paginateListObjectsV2,
  type S3Client,
} from "@aws-sdk/client-s3";

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

/** What a conditional delete found. */
export type ConditionalDelete = "removed" | "changed" | "absent";

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

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

/** {@link LoanStore} on the device bucket, under {@link LOANS_PREFIX}. */
export function s3LoanStore(s3: S3Client, bucket: string): LoanStore {
  const read = async (key: string): Promise<{ body: string; etag: string } | undefined> => {
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return { body: await res.Body!.transformToString("utf8"), etag: res.ETag ?? "" };
    } catch (err) {
      if (err instanceof NoSuchKey || statusOf(err) === 404) return undefined;
      throw err;
    }
  };
  const deleteIfMatch = async (key: string, etag: string): Promise<ConditionalDelete> => {
    // S3 user guide, conditional deletes: 412 PreconditionFailed when the ETag differs, 404
    // NoSuchKey when the key is gone, 409 ConditionalRequestConflict while a conflicting conditional
    // request is in flight (retry). Needs s3:GetObject besides s3:DeleteObject; the role has both.
    for (let attempt = 0; ; attempt++) {
      try {
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, IfMatch: etag }));
        return "removed";
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
  };
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
      const found = await read(loanKey(id));
      return found && { id, xml: found.body, etag: found.etag };
    },
    async put(id, xml) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: loanKey(id), Body: xml, ContentType: "application/xml" }));
    },
    removeIfUnchanged: (id, etag) => deleteIfMatch(loanKey(id), etag),
    async createMarker(id, body) {
      try {
        const res = await s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: returnMarkerKey(id), Body: body, ContentType: "application/json", IfNoneMatch: "*" }),
        );
        return res.ETag ?? "";
      } catch (err) {
        // 412: a marker exists. 409: a concurrent conditional write to it is in flight — another
        // return is starting, which for the caller is the same thing.
        if (statusOf(err) === 412 || statusOf(err) === 409) return undefined;
        throw err;
      }
    },
    readMarker: (id) => read(returnMarkerKey(id)),
    removeMarker: (id, etag) => deleteIfMatch(returnMarkerKey(id), etag),
  };
}
