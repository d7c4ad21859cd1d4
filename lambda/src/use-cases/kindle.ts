import { OUTPUT_PREFIX, type ConversionAnswer, type KindleAnswer, type OutputFile } from "../contract";
import { BadRequestError, ServiceError } from "../errors";
import { KindleNotConfiguredError, type Kindle } from "../kindle/deliver";
import { TEST_DOCUMENT_AUTHOR, TEST_DOCUMENT_TITLE, testDocument } from "../kindle/test-document";
import { bookType } from "../opds/feed";
import type { Library, StoredBook } from "../output-store";
import { readJsonObject } from "../request";
import type { Call, Services } from "./context";

/**
 * Send to Kindle as a request asks for it: with a conversion (`deliver: "kindle"`) or for a book the
 * output bucket still holds (`POST /kindle {"s3_key": …}`, the page's "Send to Kindle" on a recent
 * book). The book is read back from the bucket either way, so a new, a reused and a recent book
 * take the same path. A failure to send never loses the book: its answer carries the book's
 * `output_files` (the download link) beside the error.
 */

/** The Kindle sender, or the 400 saying Send to Kindle is not set up (asked before anything is converted). */
export function requireKindle(services: Services): Kindle {
  if (services.kindle === undefined) throw new KindleNotConfiguredError();
  return services.kindle;
}

function libraryOf(services: Services): Library {
  const { library } = services.output;
  if (library === undefined) throw new KindleNotConfiguredError();
  return library;
}

/** 404: `POST /kindle` named a book the output bucket does not (or no longer) hold. */
export class KindleBookGoneError extends ServiceError {
  constructor(key: string) {
    super(404, "NoSuchBook", `No stored book has the key ${key.slice(0, 300)}: the output bucket no longer keeps it (books are kept for output_bucket_lifecycle_days). Convert its ACSM again.`, { s3_key: key });
  }
}

/** The error of a failed send, with the book's download link: the conversion itself stands. */
function withDownload(err: unknown, files: readonly OutputFile[]): unknown {
  if (!(err instanceof ServiceError)) return err;
  const said = `${err.message} The book itself is converted: download it from output_files[0].download_url.`;
  const wrapped = new ServiceError(err.statusCode, err.errorType, said, { ...err.details, output_files: files }, { cause: err });
  Object.assign(wrapped.headers, err.headers);
  return wrapped;
}

/** Mails the stored `book`; `files` are what the answer links to it. */
async function sendStored(services: Services, call: Call, kindle: Kindle, book: StoredBook, files: readonly OutputFile[]) {
  const bytes = await libraryOf(services).bytes(book.key);
  if (bytes === undefined) throw new KindleBookGoneError(book.key);
  try {
    return await kindle.send({ bytes, contentType: bookType(book.filename), title: book.title, author: book.author, language: book.language }, Date.now() + call.timeLeftMs(), call.log);
  } catch (err) {
    throw withDownload(err, files);
  }
}

/** The book a conversion's answer names (its `s3_key`), as stored. */
async function storedBook(services: Services, key: string): Promise<StoredBook> {
  const id = key.startsWith(OUTPUT_PREFIX) ? key.split("/")[1] ?? "" : "";
  const book = await libraryOf(services).find(id);
  if (book === undefined || book.key !== key) throw new KindleBookGoneError(key);
  return book;
}

/** A conversion's answer, its book also sent to the Kindle. */
export async function deliverConverted(services: Services, call: Call, kindle: Kindle, answer: ConversionAnswer): Promise<ConversionAnswer> {
  const [file] = answer.output_files;
  const book = await storedBook(services, file.s3_key).catch((err: unknown) => {
    throw withDownload(err, answer.output_files);
  });
  const kindleSent = await sendStored(services, call, kindle, book, answer.output_files);
  return { ...answer, message: `${answer.message} ${kindleSent.message}`, kindle: kindleSent };
}

/** `POST /kindle {"s3_key": "converted/…"}`: sends a book the bucket still holds, with a fresh link to it. */
export async function sendToKindle(services: Services, call: Call): Promise<KindleAnswer> {
  const kindle = requireKindle(services);
  const body = readJsonObject(call.event);
  if (body.test === true) return { kindle: await sendTestDocument(services, call, kindle), output_files: [] };
  const key = body.s3_key;
  if (typeof key !== "string" || key.trim() === "") {
    throw new BadRequestError('POST /kindle needs JSON {"s3_key": "converted/…"} (the s3_key of a conversion\'s output_files), or {"test": true} to send a small test document.');
  }
  const book = await storedBook(services, key.trim());
  const type = bookType(book.filename);
  const link = await libraryOf(services).link(book.key, book.filename, type, services.config.downloadUrlExpirySeconds);
  const files: OutputFile[] = [{ filename: book.filename, s3_key: book.key, download_url: link.url, size_bytes: book.sizeBytes, content_type: type, expires_at: link.expiresAt.toISOString() }];
  const kindleSent = await sendStored(services, call, kindle, book, files);
  return { kindle: kindleSent, output_files: files };
}

/** `POST /kindle {"test": true}`: a one-page EPUB through the same path as a book, to check the set-up. */
async function sendTestDocument(services: Services, call: Call, kindle: Kindle) {
  const bytes = await testDocument(services.now());
  return kindle.send({ bytes, contentType: "application/epub+zip", title: TEST_DOCUMENT_TITLE, author: TEST_DOCUMENT_AUTHOR }, Date.now() + call.timeLeftMs(), call.log);
}
