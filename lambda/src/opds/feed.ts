import { createHash } from "node:crypto";
import { OPDS_ACQUISITION_FEED_TYPE } from "../contract";
import type { StoredBook } from "../output-store";

/**
 * The OPDS feed's two documents over the books the output bucket holds, newest first: an OPDS
 * Catalog 1.2 acquisition feed (an Atom feed, RFC 4287) for e-reader apps and a small HTML page for
 * a phone's or an e-reader's browser. Both use relative links only, so the secret in the feed's path
 * carries over to every link without being written out again, and each book's link is the feed's
 * `books/<id>`, which answers a 302 to a fresh presigned link (a Function URL cannot answer a book:
 * its buffered answers are capped at 6 MB).
 */

/** Where the documents' relative links start: `""` below `/opds/<feed>/`, `"<feed>/"` at `/opds/<feed>` (no slash). */
export interface FeedPlace {
  /** Prefix of every relative link (`books/<id>` becomes `${base}books/<id>`). */
  readonly base: string;
  /** When the documents were made: the feed's `updated` without books. */
  readonly now: Date;
}

/** At most this many books are listed (the newest); `total` says how many are stored. */
export const FEED_MAX_BOOKS = 500;

/** What the feed calls itself (its atom:title) and the page's heading. */
export const FEED_TITLE = "knock-lambda library";

/** The media type of a stored book, by its file name: what the acquisition link announces. */
export function bookType(filename: string): "application/epub+zip" | "application/pdf" {
  return /\.pdf$/i.test(filename) ? "application/pdf" : "application/epub+zip";
}

/** XML 1.0 §2.4/§3.3.3: `&`, `<`, `>` and `"` escaped; characters XML forbids (§2.2) dropped. */
function xmlText(text: string): string {
  return text
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** The title a book is listed by: the ACSM's, else its file name without the extension. */
export function listedTitle(book: StoredBook): string {
  return book.title ?? book.filename.replace(/\.(epub|pdf)$/i, "");
}

function formatBytes(n: number): string {
  if (n < 1000) return `${n} bytes`;
  if (n < 1_000_000) return `${Math.round(n / 1000)} KB`;
  return `${(n / 1_000_000).toFixed(1)} MB`;
}

/** "EPUB, 1.2 MB": the entry's content and the page's line under a title. */
export function bookSummary(book: StoredBook): string {
  return `${bookType(book.filename) === "application/pdf" ? "PDF" : "EPUB"}, ${formatBytes(book.sizeBytes)}`;
}

/**
 * A stable atom:id for a book (RFC 4287 §4.2.6: an IRI that never changes for the entry, §4.2.6.1
 * suggests a URN): a UUID URN when the book's id is one (Lambda's request ids are), else one made
 * from its SHA-256, never the feed's secret path.
 */
function entryId(book: StoredBook): string {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(book.id)) return `urn:uuid:${book.id.toLowerCase()}`;
  return `urn:sha256:${createHash("sha256").update(book.key).digest("hex")}`;
}

/** The relative link that answers the book (a 302 to a presigned link). */
export function bookHref(place: FeedPlace, book: StoredBook): string {
  return `${place.base}books/${encodeURIComponent(book.id)}`;
}

/**
 * The acquisition feed. What it holds, by the rules it follows:
 * - RFC 4287 §4.1.1: the feed has exactly one atom:id, atom:title and atom:updated, and an
 *   atom:author (no entry has to carry one then); §4.1.2: each entry has exactly one atom:id,
 *   atom:title and atom:updated, and, having no alternate link, an atom:content (a text line).
 * - OPDS Catalog 1.2 §2: a feed whose entries carry acquisition links is an Acquisition Feed; §2.1:
 *   a `start` link to the catalog's root (this feed is the whole catalog); §2.3: links to it use its
 *   media type with `kind=acquisition`; §2.6: one `self` link.
 * - OPDS Catalog 1.2 §5 (entries): the generic acquisition relation `http://opds-spec.org/acquisition`
 *   with the book's media type; RFC 4287 §4.2.7.6 `length`, the book's size in bytes.
 * - `dc:format` is not used: the link's type says it (OPDS 1.2 §5.2 leaves the DC elements optional).
 */
export function acquisitionFeed(books: readonly StoredBook[], place: FeedPlace): string {
  const updated = (books[0]?.storedAt ?? place.now).toISOString();
  const self = place.base === "" ? "./" : place.base;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opds="http://opds-spec.org/2010/catalog">',
    // The feed's id must not be its URL (that holds the secret): a fixed URN of this service's feed.
    "  <id>urn:knock-lambda:opds:library</id>",
    `  <title>${xmlText(FEED_TITLE)}</title>`,
    `  <updated>${updated}</updated>`,
    "  <author><name>knock-lambda</name></author>",
    `  <link rel="self" href="${xmlText(self)}" type="${OPDS_ACQUISITION_FEED_TYPE}"/>`,
    `  <link rel="start" href="${xmlText(self)}" type="${OPDS_ACQUISITION_FEED_TYPE}"/>`,
  ];
  for (const book of books) {
    lines.push(
      "  <entry>",
      `    <title>${xmlText(listedTitle(book))}</title>`,
      `    <id>${entryId(book)}</id>`,
      `    <updated>${book.storedAt.toISOString()}</updated>`,
      ...(book.author === undefined ? [] : [`    <author><name>${xmlText(book.author)}</name></author>`]),
      `    <content type="text">${xmlText(bookSummary(book))}</content>`,
      `    <link rel="http://opds-spec.org/acquisition" href="${xmlText(bookHref(place, book))}" type="${bookType(book.filename)}" length="${book.sizeBytes}" title="${xmlText(book.filename)}"/>`,
      "  </entry>",
    );
  }
  lines.push("</feed>", "");
  return lines.join("\n");
}

/** HTML text and attribute values (HTML §13.1.2.6): the same five characters as XML. */
function htmlText(text: string): string {
  return xmlText(text).replace(/'/g, "&#39;");
}

/**
 * The library page at the feed's address, for a browser: each book a plain link (the same
 * `books/<id>` as the feed), its author, format, size and when it was converted. No script, no
 * style sheet of its own origin's, nothing to load: old e-reader browsers show it as is.
 */
export function libraryPage(books: readonly StoredBook[], total: number, place: FeedPlace): string {
  const items = books.map((book) => {
    const by = book.author === undefined ? "" : ` — ${htmlText(book.author)}`;
    const when = book.storedAt.toISOString().slice(0, 10);
    return `<li><a href="${htmlText(bookHref(place, book))}" download="${htmlText(book.filename)}">${htmlText(listedTitle(book))}</a>${by}<br><small>${htmlText(bookSummary(book))}, converted ${when}</small></li>`;
  });
  const more = total > books.length ? `<p>The newest ${books.length} of ${total} books.</p>` : "";
  return [
    "<!doctype html>",
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta name="robots" content="noindex"><title>${htmlText(FEED_TITLE)}</title>`,
    `<style>${LIBRARY_STYLE}</style></head>`,
    "<body>",
    `<h1>${htmlText(FEED_TITLE)}</h1>`,
    books.length === 0 ? "<p>No books yet. Converted books are listed here until the output bucket expires them.</p>" : `<ul>${items.join("")}</ul>${more}`,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** The page's only style: readable on a phone and on an e-ink browser. */
export const LIBRARY_STYLE = "body{font-family:sans-serif;max-width:40em;margin:1em auto;padding:0 1em;line-height:1.4}li{margin:0 0 1em}a{font-size:1.15em}";

/** The library page's headers: its inline style only (CSP), no referrer (the URL holds the secret), never cached. */
export function libraryPageHeaders(): Record<string, string> {
  const style = `'sha256-${createHash("sha256").update(LIBRARY_STYLE, "utf8").digest("base64")}'`;
  return {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": `default-src 'none'; style-src ${style}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    vary: "Accept",
    "cache-control": "no-store",
  };
}
