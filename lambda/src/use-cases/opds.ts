import type { HandlerResult } from "../answer";
import { OPDS_ACQUISITION_FEED_TYPE, ROUTES, routeList } from "../contract";
import { NotFoundError, ServiceError } from "../errors";
import { FEED_MAX_BOOKS, acquisitionFeed, bookType, libraryPage, libraryPageHeaders, type FeedPlace } from "../opds/feed";
import type { Library } from "../output-store";
import { isFunctionUrlEvent, requestPath } from "../request";
import type { Call, Services } from "./context";

/**
 * The OPDS feed's routes (`/opds/<feed>/…`): the router has already checked the feed's secret (a
 * wrong one never reaches these). They list and hand out what the output bucket holds, so a book
 * stays listed as long as the bucket keeps it (`output_bucket_lifecycle_days`).
 */

/** How long the link a book's 302 points at works: the app follows it at once. */
export const BOOK_REDIRECT_EXPIRY_SECONDS = 300;

/** The books, or the unknown-path answer for a store that keeps none (a test's stand-in). */
function libraryOf(services: Services): Library {
  const { library } = services.output;
  if (library === undefined) throw new NotFoundError(routeList(ROUTES));
  return library;
}

/**
 * Where relative links start: below `/opds/<feed>/` they resolve as they are; at `/opds/<feed>`
 * (no slash, which the route also answers) `books/x` would resolve to `/opds/books/x`, so they are
 * prefixed with the path's own last segment, exactly as the request sent it.
 */
function placeOf(call: Call, now: Date): FeedPlace {
  const path = isFunctionUrlEvent(call.event) ? requestPath(call.event) : "/";
  return { base: path.endsWith("/") ? "" : `${path.slice(path.lastIndexOf("/") + 1)}/`, now };
}

/** `GET /opds/<feed>/` for an e-reader app: the acquisition feed. */
export async function opdsFeed(services: Services, call: Call): Promise<HandlerResult> {
  const { books } = await libraryOf(services).newest(FEED_MAX_BOOKS);
  return {
    statusCode: 200,
    // The feed links to every stored book: no cache may keep it (its URL holds the secret anyway).
    headers: { "content-type": `${OPDS_ACQUISITION_FEED_TYPE};charset=utf-8`, "cache-control": "no-store", vary: "Accept", "referrer-policy": "no-referrer" },
    body: acquisitionFeed(books, placeOf(call, services.now())),
  };
}

/** `GET /opds/<feed>/` for a browser: the library page. */
export async function opdsPage(services: Services, call: Call): Promise<HandlerResult> {
  const { books, total } = await libraryOf(services).newest(FEED_MAX_BOOKS);
  return { statusCode: 200, headers: libraryPageHeaders(), body: libraryPage(books, total, placeOf(call, services.now())) };
}

/** 404 for a book the feed no longer has (expired by the bucket's lifecycle, or never stored). */
export class NoSuchBookError extends ServiceError {
  constructor(id: string) {
    super(404, "NoSuchBook", `No stored book has the id ${id}: the output bucket no longer keeps it (books are kept for output_bucket_lifecycle_days). Convert its ACSM again, or reload the feed.`, { book_id: id });
  }
}

/**
 * `GET /opds/<feed>/books/<book>`: a 302 to a fresh presigned link of the book. Never the bytes (a
 * Function URL's buffered answer is capped at 6 MB), and nothing on the redirect that S3 would read
 * as a second way to authenticate: the link carries its own signature only.
 */
export async function opdsBook(services: Services, call: Call): Promise<HandlerResult> {
  const library = libraryOf(services);
  const id = call.params.book ?? "";
  const book = await library.find(id);
  if (book === undefined) throw new NoSuchBookError(id);
  const link = await library.link(book.key, book.filename, bookType(book.filename), BOOK_REDIRECT_EXPIRY_SECONDS);
  return { statusCode: 302, headers: { location: link.url, "cache-control": "no-store", "referrer-policy": "no-referrer" }, body: "" };
}
