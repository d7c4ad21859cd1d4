/**
 * How `knock serve`'s download links answer `Range` and `If-Range`, as the S3 presigned links they
 * stand in for do (a phone that loses the connection resumes instead of starting over).
 *
 * Rules: RFC 9110 §14.1.1–14.1.2 (byte ranges: `first-last`, `first-`, `-suffix`; a last position
 * past the end means the end; a suffix longer than the file means all of it; a suffix of 0 and a
 * first position at or past the end are unsatisfiable), §14.2 (a range unit the server does not
 * know, or an invalid ranges-specifier, is ignored: the whole representation, 200), §14.4 and
 * §15.5.17 (a 416 carries a Content-Range with `*` in place of the range and the file's length),
 * §13.1.5 (If-Range: strong comparison of an entity tag, an exact match of Last-Modified for a
 * date; when it fails, the Range is ignored).
 *
 * S3: Amazon S3 API Reference, GetObject, request parameter `Range`: "Amazon S3 doesn't support
 * retrieving multiple ranges of data per GET request" — S3 then ignores the Range and answers 200
 * with the whole object (observed and reported in awslabs/aws-c-s3 issue #257 and basho/riak_cs
 * PR #304), which is what happens here too. S3 likewise ignores an invalid range such as
 * `bytes=33-10` (versity/versitygw issue #1120), and answers an unsatisfiable one with 416 and
 * error code InvalidRange (versity/versitygw issue #2069 shows the body).
 */

/** What to send for a request's Range header. */
export type RangeAnswer =
  /** 200 with the whole file: no Range, one to ignore, or an If-Range that no longer holds. */
  | { readonly kind: "whole" }
  /** 206 with bytes `start`..`end` (both inclusive). */
  | { readonly kind: "partial"; readonly start: number; readonly end: number }
  /** 416, with a Content-Range that gives only the file's size. */
  | { readonly kind: "unsatisfiable" };

const WHOLE: RangeAnswer = { kind: "whole" };

/** Resolves a `Range` header value against a file of `size` bytes. */
export function resolveRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return WHOLE;
  const eq = header.indexOf("=");
  // Range units are case-insensitive (RFC 9110 §14.1); any unit but bytes is ignored.
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return WHOLE;
  // A list may carry empty elements, which a recipient must accept and skip (RFC 9110 §5.6.1).
  const specs = header
    .slice(eq + 1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (specs.length !== 1) return WHOLE; // none is invalid; several are what S3 does not support
  const spec = specs[0];

  const suffix = /^-(\d+)$/.exec(spec);
  if (suffix) {
    const length = Number(suffix[1]);
    if (length === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - length), end: size - 1 };
  }
  const range = /^(\d+)-(\d*)$/.exec(spec);
  if (!range) return WHOLE;
  const first = Number(range[1]);
  const last = range[2] === "" ? undefined : Number(range[2]);
  if (last !== undefined && last < first) return WHOLE; // invalid, so ignored (§14.1.1)
  if (first >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", start: first, end: Math.min(last ?? size - 1, size - 1) };
}

/**
 * Whether an `If-Range` precondition holds for the file's current validators: an entity tag must
 * equal ours exactly (a weak tag never does: If-Range needs a strong match), a date must be our
 * Last-Modified exactly. Every key's file is written once (a new request gets a new key), so the
 * Last-Modified date is as strong a validator as the entity tag here.
 */
export function ifRangeHolds(ifRange: string | undefined, validators: { readonly etag: string; readonly lastModified: string }): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return value === validators.etag;
  return value === validators.lastModified;
}
