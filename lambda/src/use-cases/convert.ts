import { validateAcsm } from "../acsm";
import { MAX_BODY_BYTES, type ConversionAnswer, type OutputFile } from "../contract";
import { convertAcsm, downloadName, type ConvertedBook } from "../convert";
import { withEgress } from "../egress";
import { fetchAcsm } from "../fetch-acsm";
import { readConversion, type AcsmSource } from "../request";
import type { Call, Services } from "./context";

/** Time limit for fetching an `acsm_url` (it is a few KB). */
const ACSM_URL_TIMEOUT_MS = 10_000;

/**
 * `POST /` (and every direct invocation): reads the ACSM from the body or `acsm_url`, checks it,
 * converts it with the stored device through the egress proxy, stores the book and links it; a
 * loaned book's token is kept so the loan can be listed and returned early.
 */
export async function convert(services: Services, call: Call): Promise<ConversionAnswer> {
  const { config, devices, loans } = services;
  const { log } = call;
  const request = readConversion(call.event);
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

  const workDir = await call.workDir();
  const outputName = downloadName(info.title, info.format);
  const book = await withEgress(services.tools, log, (toolEnv) =>
    convertAcsm(acsm, { toolsDir: config.toolsDir, devices, workDir, timeLeftMs: call.timeLeftMs, log, toolEnv, outputName }),
  );
  const file = await store(services, book, call.requestId);
  // A loaned book: keep its loan token so that it can be listed and returned early.
  const loan = book.loanToken === undefined ? undefined : await loans.keep(book.loanToken, log);
  log.info("conversion done", { title: info.title, size_bytes: book.sizeBytes, duration_ms: Date.now() - call.started });
  return {
    message: "ACSM converted; download the book from download_url before expires_at.",
    output_files: [file],
    files_count: 1,
    source_acsm_filename: sourceFileName(source, request.filename),
    ...(loan === undefined ? {} : { loan }),
  };
}

/** Uploads the book under this request's own key and links it. */
async function store(services: Services, book: ConvertedBook, requestId: string): Promise<OutputFile> {
  const { output, config } = services;
  const filename = safeFileName(book.filename);
  const link = await output.keep(requestId, filename, book.path, book.contentType, config.downloadUrlExpirySeconds);
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
