import { ACSM_IDENTITY_PATTERN, ACSM_INDEX_PREFIX, BOOK_METADATA, OUTPUT_PREFIX, acsmClaimKey, acsmIndexKey, outputKey, type ConversionLoan } from "./contract";
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

/** What the ACSM says of a book, stored with it (the contract's BOOK_METADATA) for the OPDS feed. */
export interface BookAbout {
  readonly title?: string | undefined;
  readonly author?: string | undefined;
  readonly language?: string | undefined;
}

/** A converted book as the output bucket holds it. */
export interface StoredBook {
  /** `converted/<request id>/<filename>`. */
  readonly key: string;
  /** The request id of the conversion that stored it: the book's name in the feed's links. */
  readonly id: string;
  readonly filename: string;
  readonly sizeBytes: number;
  /** When it was stored (S3's LastModified). */
  readonly storedAt: Date;
  /** From the book's metadata; absent for a book stored before it was kept. */
  readonly title?: string;
  readonly author?: string;
  readonly language?: string;
}

/** The books the output bucket holds: what the OPDS feed lists. */
export interface Library {
  /**
   * The newest `limit` books, newest first (never the reuse index beside them), and how many are
   * stored in all.
   */
  newest(limit: number): Promise<{ readonly books: readonly StoredBook[]; readonly total: number }>;
  /** The book of the conversion `bookId` (its request id: {@link StoredBook.id}) while it is stored, else undefined. */
  find(bookId: string): Promise<StoredBook | undefined>;
  /** A stored book's bytes (to mail it), or undefined once it is gone. */
  bytes(key: string): Promise<Buffer | undefined>;
  /** A fresh GET link to a stored book, as {@link OutputStore.keep} gives. */
  link(key: string, filename: string, contentType: string, expirySeconds: number): Promise<KeptBook>;
}

/** Where converted books go and how callers get them. */
export interface OutputStore {
  /**
   * Streams the file at `path` (never holding the whole book in memory) to this request's own key,
   * and returns a GET URL valid for `expirySeconds` that downloads as an attachment named
   * `filename`, with when it stops working: a presigned URL is only valid while the credentials
   * that signed it are, so the earlier of the two (on Lambda these are the role's temporary ones).
   * `about` is stored with the book (its title and author, for the OPDS feed).
   */
  keep(requestId: string, filename: string, path: string, contentType: string, expirySeconds: number, about?: BookAbout): Promise<KeptBook>;
  /** The index of converted ACSMs; a store without one (a test's stand-in) converts every request. */
  readonly reuse?: ReuseIndex;
  /** The stored books, for the OPDS feed; a store without them (a test's stand-in) has no feed. */
  readonly library?: Library;
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

/** Longest encoded metadata value: S3 allows 2 KB of user metadata per object, names included. */
const MAX_METADATA_VALUE = 900;

/** A metadata value: percent-encoded UTF-8, cut (whole characters) to fit {@link MAX_METADATA_VALUE}. */
function encodeMetadata(text: string): string {
  const chars = Array.from(text.replace(/\s+/g, " ").trim());
  let encoded = encodeURIComponent(chars.join(""));
  while (encoded.length > MAX_METADATA_VALUE) {
    chars.length = Math.floor(chars.length * 0.9);
    encoded = encodeURIComponent(chars.join("").trimEnd() + "…");
  }
  return encoded;
}

function decodeMetadata(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** The book's metadata to store: only what the ACSM gave. */
function bookMetadata(about: BookAbout | undefined): Record<string, string> | undefined {
  const entries = (["title", "author", "language"] as const).flatMap((k) => {
    const v = about?.[k]?.trim();
    return v ? [[BOOK_METADATA[k], encodeMetadata(v)] as const] : [];
  });
  return entries.length === 0 ? undefined : Object.fromEntries(entries);
}

/** True for a key the output bucket holds a book at: `converted/<request id>/<filename>`, not the reuse index's. */
export function isBookKey(key: string): boolean {
  return key.startsWith(OUTPUT_PREFIX) && !key.startsWith(ACSM_INDEX_PREFIX) && key.split("/").length === 3 && !key.endsWith("/");
}

/**
 * What a book id (a request id) may be: Lambda's are UUIDs, `knock serve`'s too; letters, digits and
 * `-` cover both and keep a crafted id from naming another prefix.
 */
const BOOK_ID_PATTERN = /^[A-Za-z0-9-]{1,100}$/;

/** How many HEAD requests the feed keeps in flight while it reads the books' metadata. */
const HEADS_IN_FLIGHT = 16;

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
  const described = async (key: string, sizeBytes: number, storedAt: Date): Promise<StoredBook | undefined> => {
    const head = await objects.head(key);
    if (head === undefined) return undefined; // expired since it was listed
    const title = decodeMetadata(head.metadata?.[BOOK_METADATA.title]);
    const author = decodeMetadata(head.metadata?.[BOOK_METADATA.author]);
    const language = decodeMetadata(head.metadata?.[BOOK_METADATA.language]);
    return {
      key, id: key.split("/")[1], filename: key.slice(key.lastIndexOf("/") + 1), sizeBytes, storedAt,
      ...(title === undefined ? {} : { title }), ...(author === undefined ? {} : { author }), ...(language === undefined ? {} : { language }),
    };
  };
  return {
    async keep(requestId, filename, path, contentType, expirySeconds, about) {
      const key = outputKey(requestId, filename);
      await objects.upload(key, path, contentType, bookMetadata(about));
      return link(key, filename, contentType, expirySeconds);
    },
    library: {
      async newest(limit) {
        const listed = (await objects.list(OUTPUT_PREFIX)).filter((o) => isBookKey(o.key));
        // S3's LastModified counts whole seconds: books of the same second keep the keys' order.
        listed.sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime() || (a.key < b.key ? -1 : 1));
        const wanted = listed.slice(0, Math.max(0, limit));
        // ListObjectsV2 carries no user metadata: one HEAD per listed book, a few at a time.
        const books: (StoredBook | undefined)[] = new Array(wanted.length);
        let next = 0;
        await Promise.all(
          Array.from({ length: Math.min(HEADS_IN_FLIGHT, wanted.length) }, async () => {
            for (let i = next++; i < wanted.length; i = next++) books[i] = await described(wanted[i].key, wanted[i].size, wanted[i].lastModified);
          }),
        );
        return { books: books.filter((b): b is StoredBook => b !== undefined), total: listed.length };
      },
      async find(bookId) {
        // A request id names its folder, which holds one book; anything else names no book.
        if (!BOOK_ID_PATTERN.test(bookId)) return undefined;
        const object = (await objects.list(`${OUTPUT_PREFIX}${bookId}/`)).find((o) => isBookKey(o.key));
        return object === undefined ? undefined : described(object.key, object.size, object.lastModified);
      },
      async bytes(key) {
        if (!isBookKey(key)) return undefined;
        return (await objects.get(key))?.body;
      },
      link,
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
