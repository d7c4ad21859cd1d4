import { describeAcsm, validateAcsm, type AcsmInfo } from "../acsm";
import { MAX_BODY_BYTES, type ConversionAnswer, type OutputFile } from "../contract";
import { convertAcsm, downloadName, type ConvertedBook } from "../convert";
import { withEgress } from "../egress";
import { fetchAcsm } from "../fetch-acsm";
import type { BookAbout, ConvertedRecord } from "../output-store";
import { readConversion, type AcsmSource, type ConversionInput } from "../request";
import { acquire, acsmIdentity, withoutClaim } from "../reuse";
import type { Call, Services } from "./context";
import { deliverConverted, requireKindle } from "./kindle";

/** Time limit for fetching an `acsm_url` (it is a few KB). */
const ACSM_URL_TIMEOUT_MS = 10_000;

/**
 * `POST /` (and every direct invocation): reads the ACSM from the body or `acsm_url`, checks it,
 * converts it with the stored device through the egress proxy, stores the book and links it; a
 * loaned book's token is kept so the loan can be listed and returned early. An ACSM converted before
 * whose book is still stored is answered with that book, linked afresh (`reused`), and two identical
 * requests at once convert once (reuse.ts).
 */
export async function convert(services: Services, call: Call): Promise<ConversionAnswer> {
  const request = readConversion(call.event);
  if (request.deliver !== "kindle") return convertOnly(services, call, request);
  // Asked before anything is fulfilled: a service without Send to Kindle converts nothing for it.
  const kindle = requireKindle(services);
  return deliverConverted(services, call, kindle, await convertOnly(services, call, request));
}

/** The conversion itself: the book stored and linked, or the earlier one reused. */
async function convertOnly(services: Services, call: Call, request: ConversionInput): Promise<ConversionAnswer> {
  const { config } = services;
  const { log } = call;
  const { source } = request;
  log.info("conversion requested", { source: source.kind });
  const acsm =
    source.kind === "content"
      ? source.content
      : await fetchAcsm(source.url, {
          ...services.acsmUrl,
          maxBytes: MAX_BODY_BYTES,
          timeoutMs: Math.min(ACSM_URL_TIMEOUT_MS, call.timeLeftMs()),
        });
  const info = validateAcsm(acsm, services.now());
  const sourceName = sourceFileName(source, request.filename);

  // The same ACSM again: the book converted from it, while it is still stored (see reuse.ts).
  const index = services.output.reuse;
  if (index === undefined) return convertNow(services, call, acsm, info, sourceName);
  const identity = acsmIdentity(acsm, info.operatorURL);
  // Reuse saves a fulfilment; a failure to look (an object store refusing) must not cost the book.
  const ctx = { log, requestId: call.requestId, now: services.now, timeLeftMs: call.timeLeftMs, usable: (record: ConvertedRecord) => loanIsCurrent(services, record) };
  const outcome = await acquire(index, identity, ctx).catch(
    (err: unknown) => {
      log.error("could not look for an earlier conversion of this ACSM; converting", { acsm_identity: identity, error: (err as Error).message });
      return withoutClaim(index, identity);
    },
  );
  if (outcome.kind === "stored") {
    const { record } = outcome;
    // A fresh link, but none that outlives the book (S3 reports when its lifecycle removes it).
    const left = outcome.expiresAt === undefined ? Infinity : Math.floor((outcome.expiresAt.getTime() - services.now().getTime()) / 1000);
    const link = await index.link(record.key, record.filename, record.content_type, Math.max(1, Math.min(config.downloadUrlExpirySeconds, left)));
    log.info("conversion reused", { acsm_identity: identity, s3_key: record.key, converted_at: record.stored_at });
    return {
      message: "This ACSM was converted before and its book is still stored: download it from download_url before expires_at (the distributor was not asked again).",
      output_files: [
        {
          filename: record.filename,
          s3_key: record.key,
          download_url: link.url,
          size_bytes: record.size_bytes,
          content_type: record.content_type,
          expires_at: link.expiresAt.toISOString(),
        },
      ],
      files_count: 1,
      source_acsm_filename: sourceName,
      ...(record.loan === undefined ? {} : { loan: record.loan }),
      reused: true,
      converted_at: record.stored_at,
    };
  }
  try {
    const answer = await convertNow(services, call, acsm, info, sourceName);
    const [file] = answer.output_files;
    const record: ConvertedRecord = {
      key: file.s3_key,
      filename: file.filename,
      content_type: file.content_type,
      size_bytes: file.size_bytes,
      stored_at: services.now().toISOString(),
      ...(answer.loan === undefined ? {} : { loan: answer.loan }),
    };
    // The book is kept and linked: failing to remember it only costs a later request a new fulfilment.
    await outcome.record(record).catch((err: unknown) => {
      log.error("could not record the converted book for reuse", { acsm_identity: identity, error: (err as Error).message });
    });
    return answer;
  } finally {
    await outcome.release();
  }
}

/**
 * Whether a stored book may be handed out again: a purchase always; a loaned book only while its
 * loan runs and, when the service kept its token, while that token is still stored (a returned or
 * forgotten loan's book is not given out again).
 */
async function loanIsCurrent(services: Services, record: ConvertedRecord): Promise<boolean> {
  const { loan } = record;
  if (loan === undefined) return true;
  const now = services.now();
  if (loan.expires_at !== null && Date.parse(loan.expires_at) <= now.getTime()) return false;
  if (!loan.returnable) return true;
  const { loans } = await services.loans.list(now);
  return loans.some((entry) => entry.id === loan.id && !("expired" in entry && entry.expired));
}

/** Converts the ACSM with the stored device, keeps the book and links it. */
async function convertNow(services: Services, call: Call, acsm: string, info: AcsmInfo, sourceName: string): Promise<ConversionAnswer> {
  const { config, devices, loans } = services;
  const { log } = call;
  const workDir = await call.workDir();
  const outputName = downloadName(info.title, info.format);
  const book = await withEgress(services.tools, log, (toolEnv) =>
    convertAcsm(acsm, {
      toolsDir: config.toolsDir, devices, workDir, timeLeftMs: call.timeLeftMs, log, toolEnv, outputName,
      ...(services.tools.retrySleep === undefined ? {} : { retry: { sleep: services.tools.retrySleep } }),
    }),
  );
  // The title and author the ACSM gives are kept with the book: the OPDS feed lists it by them.
  const described = describeAcsm(acsm);
  const file = await store(services, book, call.requestId, { title: info.title, author: described.creator, language: described.language });
  // A loaned book: keep its loan token so that it can be listed and returned early.
  const loan = book.loanToken === undefined ? undefined : await loans.keep(book.loanToken, log);
  log.info("conversion done", { title: info.title, size_bytes: book.sizeBytes, duration_ms: Date.now() - call.started });
  return {
    message: "ACSM converted; download the book from download_url before expires_at.",
    output_files: [file],
    files_count: 1,
    source_acsm_filename: sourceName,
    ...(loan === undefined ? {} : { loan }),
  };
}

/** Uploads the book under this request's own key and links it. */
async function store(services: Services, book: ConvertedBook, requestId: string, about: BookAbout): Promise<OutputFile> {
  const { output, config } = services;
  const filename = safeFileName(book.filename);
  const link = await output.keep(requestId, filename, book.path, book.contentType, config.downloadUrlExpirySeconds, about);
  return {
    filename,
    s3_key: link.key,
    download_url: link.url,
    size_bytes: book.sizeBytes,
    content_type: book.contentType,
    expires_at: link.expiresAt.toISOString(),
  };
}

/** Makes a name safe as the last segment of an S3 key and a download name (no path separators or control characters). */
export function safeFileName(name: string): string {
  const cleaned =
    Array.from(name, (c) => (c.charCodeAt(0) < 0x20 || c === "\u007f" || c === "/" || c === "\\" ? "_" : c))
      .join("")
      .trim() || "book";
  if (Buffer.byteLength(cleaned) <= 200) return cleaned;
  const dot = cleaned.lastIndexOf(".");
  const ext = dot > 0 ? cleaned.slice(dot) : "";
  let stem = cleaned.slice(0, dot > 0 ? dot : undefined);
  while (Buffer.byteLength(stem + ext) > 200) stem = stem.slice(0, -1);
  return stem + ext;
}

/** `source_acsm_filename`: the name given, else the URL's last segment, else `upload.acsm`. */
function sourceFileName(source: AcsmSource, given: string | undefined): string {
  if (given) return safeFileName(given);
  if (source.kind === "url") {
    try {
      const last = decodeURIComponent(new URL(source.url).pathname.split("/").pop() ?? "");
      if (last) return safeFileName(last);
    } catch {
      // Fall through to the generic name.
    }
  }
  return "upload.acsm";
}
