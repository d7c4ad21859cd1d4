import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { LibgourouError, mapLibgourouError, runLibgourou } from "./libgourou";
import { loanTokenPath } from "./loans";
import { ServiceError } from "./errors";
import type { DeviceManager } from "./device";
import type { Logger } from "./log";

/** A DRM-free book on local disk, ready to upload. */
export interface ConvertedBook {
  readonly path: string;
  /** File name the converter chose from the book's title, with `.epub` or `.pdf`. */
  readonly filename: string;
  readonly contentType: string;
  readonly sizeBytes: number;
  /**
   * The loan token acsmdownloader wrote for a loaned book (`<device dir>/loans/<id>.xml`), for the
   * caller to store; undefined for a purchase.
   */
  readonly loanToken?: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".epub": "application/epub+zip",
  ".pdf": "application/pdf",
};

/** What {@link convertAcsm} needs besides the ACSM. */
export interface ConvertContext {
  readonly toolsDir: string;
  readonly devices: DeviceManager;
  /** Empty per-invocation directory, removed by the caller. */
  readonly workDir: string;
  /** Milliseconds the next child process may run (derived from the invocation's remaining time). */
  readonly timeLeftMs: () => number;
  readonly log: Logger;
  /** The tools' whole environment (minimal, with the egress proxy). @default toolEnvironment() */
  readonly toolEnv?: NodeJS.ProcessEnv;
  /** File name for acsmdownloader when its own (the title) would not fit; see {@link downloadName}. */
  readonly outputName?: string;
  /** How transient distributor failures are retried. @default {@link downloadRetry} */
  readonly retry?: Partial<RetryPolicy>;
}

/** How acsmdownloader is re-run after a transient failure (HTTP 429/5xx, a reset connection). */
export interface RetryPolicy {
  /** Runs of acsmdownloader at most, the first included. */
  readonly maxAttempts: number;
  /** Pause before the second run; doubled before each further one (1 s, 2 s, 4 s…). */
  readonly baseDelayMs: number;
  /** A retry starts only if at least this much of the invocation's time is left after the pause. */
  readonly minAttemptMs: number;
  /** Waits `ms` (a seam for tests). */
  readonly sleep: (ms: number) => Promise<void>;
}

/** The default {@link RetryPolicy}; a caller of {@link convertAcsm} may replace parts in {@link ConvertContext.retry} (tests: `sleep`). */
export const downloadRetry: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 1000,
  minAttemptMs: 10_000,
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
};

/** Longest file name (bytes) Linux file systems accept (NAME_MAX). */
const NAME_MAX = 255;

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * The file name to give acsmdownloader (as `-o <dir>/<name>`), or undefined to let it name the file itself.
 * Without `-o` it writes `<-O dir>/<title with / as _>` and renames it to that plus `.epub`/`.pdf`
 * (utils/acsmdownloader.cpp); a title over 255 bytes makes that fail. With `-o NAME` it uses NAME
 * verbatim and appends nothing, so the name chosen here carries the extension adept_remove needs,
 * taken from the token's <dc:format> (the distributor's own metadata, which libgourou also reads).
 */
export function downloadName(title: string | undefined, format: string | undefined): string | undefined {
  const ext = format?.includes("application/pdf") ? ".pdf" : ".epub";
  const name = (title ?? "").replace(/\//g, "_");
  if (Buffer.byteLength(name + ".epub") <= NAME_MAX) return undefined;
  // Well under NAME_MAX: the S3 key and the download name are cut to 200 bytes anyway.
  return truncateUtf8(name, 200 - ext.length).trimEnd() + ext;
}

/**
 * acsmdownloader's output arguments: `-O DIR` lets the tool name the file after the book's title and
 * append the extension adept_remove needs to pick the format; a title too long for that gets one full
 * path with `-o` instead. Never both: libgourou 0.8.9 refuses `-o` together with `-O` ("you cannot use
 * both -o and -O", utils/acsmdownloader.cpp) before it reads anything.
 */
export function downloadOutputArgs(outDir: string, outputName: string | undefined): string[] {
  return outputName === undefined ? ["-O", outDir] : ["-o", join(outDir, outputName)];
}

async function download(acsmPath: string, deviceDir: string, outDir: string, ctx: ConvertContext): Promise<{ path: string; loanToken: string | undefined }> {
  await mkdir(outDir);
  const output = downloadOutputArgs(outDir, ctx.outputName);
  const run = await runLibgourou(ctx.toolsDir, "acsmdownloader", ["-D", deviceDir, ...output, acsmPath], ctx.timeLeftMs(), ctx.toolEnv);
  const books = (await readdir(outDir)).filter((name) => extname(name).toLowerCase() in CONTENT_TYPES);
  if (books.length !== 1) {
    throw new ServiceError(500, "ConversionFailed", `acsmdownloader succeeded but produced ${books.length} EPUB/PDF files, expected one.`);
  }
  return { path: join(outDir, books[0]), loanToken: loanTokenPath(run.output, deviceDir) };
}

/**
 * {@link download}, re-run after a transient failure ({@link LibgourouError.transient}) with
 * exponential backoff, while attempts are left and the invocation's remaining time allows the pause
 * and another run. A permanent failure is thrown at once. Every run fulfils again from the start: a
 * fulfilment that reached the distributor and failed mid-download is what a second run should redo.
 * The failure thrown last carries the number of runs ({@link LibgourouError.attempts}).
 */
async function downloadWithRetry(acsmPath: string, deviceDir: string, outDir: string, ctx: ConvertContext): Promise<{ path: string; loanToken: string | undefined }> {
  const policy: RetryPolicy = { ...downloadRetry, ...ctx.retry };
  for (let attempt = 1; ; attempt++) {
    try {
      return await download(acsmPath, deviceDir, attempt === 1 ? outDir : `${outDir}-attempt-${attempt}`, ctx);
    } catch (err) {
      if (!(err instanceof LibgourouError && err.transient)) throw err;
      err.attempts = attempt;
      const delayMs = policy.baseDelayMs * 2 ** (attempt - 1);
      if (attempt >= policy.maxAttempts || ctx.timeLeftMs() - delayMs < policy.minAttemptMs) throw err;
      ctx.log.warn("transient distributor failure; retrying acsmdownloader", { attempt, delay_ms: delayMs, error: err.toolMessage });
      await policy.sleep(delayMs);
    }
  }
}

/**
 * Fulfils the ACSM with the shared device and removes the DRM. When the server answers
 * `E_ADEPT_REQUEST_EXPIRED` the stored device is no longer accepted: it is replaced (once across
 * all containers, see DeviceManager.replaceFailed) and the download retried once. Transient
 * distributor failures are retried with backoff ({@link downloadWithRetry}). Tool failures become the {@link ServiceError} the caller answers with.
 */
export async function convertAcsm(acsm: string, ctx: ConvertContext): Promise<ConvertedBook> {
  const acsmPath = join(ctx.workDir, "request.acsm");
  await writeFile(acsmPath, acsm);
  try {
    let deviceDir = await ctx.devices.get(ctx.log, ctx.timeLeftMs, ctx.toolEnv);
    let downloaded: { path: string; loanToken: string | undefined };
    try {
      downloaded = await downloadWithRetry(acsmPath, deviceDir, join(ctx.workDir, "download-1"), ctx);
    } catch (err) {
      if (!(err instanceof LibgourouError && err.isServerError("E_ADEPT_REQUEST_EXPIRED"))) throw err;
      ctx.log.warn("ADEPT server answered E_ADEPT_REQUEST_EXPIRED; re-activating and retrying once");
      deviceDir = await ctx.devices.replaceFailed(ctx.log, ctx.timeLeftMs, ctx.toolEnv);
      downloaded = await downloadWithRetry(acsmPath, deviceDir, join(ctx.workDir, "download-2"), ctx);
    }
    const encrypted = downloaded.path;
    const filename = basename(encrypted);
    const outDir = join(ctx.workDir, "book");
    await mkdir(outDir);
    const output = join(outDir, filename);
    await runLibgourou(ctx.toolsDir, "adept_remove", ["-D", deviceDir, "-f", encrypted, "-o", output], ctx.timeLeftMs(), ctx.toolEnv);
    const { size } = await stat(output);
    return { path: output, filename, contentType: CONTENT_TYPES[extname(filename).toLowerCase()], sizeBytes: size, loanToken: downloaded.loanToken };
  } catch (err) {
    if (err instanceof LibgourouError) throw mapLibgourouError(err);
    throw err;
  }
}
