/**
 * Where the function keeps what it stores, as object keys in its two buckets. The Pulumi program
 * grants the role exactly these prefixes (infra/conversion-function.ts); the function's stores
 * (device.ts, loan-store.ts, output-store.ts) are the only code that builds keys from them.
 * `knock serve` keeps the same keys as paths under its data folder, so a folder and a bucket hold
 * the same layout. Dependency-free.
 */

/** Output bucket: every converted book is under this prefix. */
export const OUTPUT_PREFIX = "converted/";

/**
 * Where a converted book is stored. The per-request folder keeps books of different callers from
 * sharing a key (defect 12 of the original); the stack grants the role exactly `converted/*`.
 */
export function outputKey(requestId: string, filename: string): string {
  return `${OUTPUT_PREFIX}${requestId}/${filename}`;
}

/**
 * The user metadata a converted book is stored with (S3's `x-amz-meta-<name>`), which the OPDS feed
 * lists it by (and Send to Kindle names and pre-flights it by): the title, author and language the ACSM gives, each percent-encoded UTF-8 (S3 metadata is
 * US-ASCII). Books stored before these existed have none; the feed then names them by file name.
 */
export const BOOK_METADATA = { title: "book-title", author: "book-author", language: "book-language" } as const;

/**
 * Where the conversions of one ACSM are remembered, beside the books (the role's `converted/*` grant
 * covers them and the bucket's lifecycle expires them with the books): `<identity>` is the ACSM's
 * identity, 64 lowercase hex digits (SHA-256; see lambda/src/reuse.ts), never anything else.
 */
export const ACSM_INDEX_PREFIX = `${OUTPUT_PREFIX}by-acsm/`;

/** An ACSM's identity as it becomes an object key: the hex SHA-256 reuse.ts makes. */
export const ACSM_IDENTITY_PATTERN = /^[0-9a-f]{64}$/;

/** Object key of the record of the book last converted from the ACSM with this identity. */
export function acsmIndexKey(identity: string): string {
  return `${ACSM_INDEX_PREFIX}${identity}.json`;
}

/** Object key of the claim a conversion of this ACSM holds while it runs (so two identical requests convert once). */
export function acsmClaimKey(identity: string): string {
  return `${ACSM_INDEX_PREFIX}${identity}.converting`;
}

/** Device bucket: the device, its backups and the loan tokens are under this prefix. */
export const DEVICE_PREFIX = "adept/";

/** The stored Adobe device (one JSON document holding libgourou's three files). */
export const DEVICE_OBJECT_KEY = `${DEVICE_PREFIX}device.json`;

/** Where a stored device document is copied, verbatim, before it is rewritten: `<prefix><ETag>.json`. */
export const DEVICE_BACKUP_PREFIX = `${DEVICE_PREFIX}backups/device-`;

/** Object key of the backup of the stored device at version `etag` (quotes and a weak marker dropped). */
export function deviceBackupKey(etag: string): string {
  return `${DEVICE_BACKUP_PREFIX}${etag.replace(/^W\//, "").replace(/"/g, "")}.json`;
}

/** Loan tokens, beside the device they belong to (the role's `adept/*` grant covers them). */
export const LOANS_PREFIX = `${DEVICE_PREFIX}loans/`;

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
