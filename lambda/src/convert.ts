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
}

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
 * Fulfils the ACSM with the shared device and removes the DRM. When the server answers
 * `E_ADEPT_REQUEST_EXPIRED` the stored device is no longer accepted: it is replaced (once across
 * all containers, see DeviceManager.replaceFailed) and the download retried once. Tool failures become the {@link ServiceError} the caller answers with.
 */
export async function convertAcsm(acsm: string, ctx: ConvertContext): Promise<ConvertedBook> {
  const acsmPath = join(ctx.workDir, "request.acsm");
  await writeFile(acsmPath, acsm);
  try {
    let deviceDir = await ctx.devices.get(ctx.log, ctx.timeLeftMs, ctx.toolEnv);
    let downloaded: { path: string; loanToken: string | undefined };
    try {
      downloaded = await download(acsmPath, deviceDir, join(ctx.workDir, "download-1"), ctx);
    } catch (err) {
      if (!(err instanceof LibgourouError && err.isServerError("E_ADEPT_REQUEST_EXPIRED"))) throw err;
      ctx.log.warn("ADEPT server answered E_ADEPT_REQUEST_EXPIRED; re-activating and retrying once");
      deviceDir = await ctx.devices.replaceFailed(ctx.log, ctx.timeLeftMs, ctx.toolEnv);
      downloaded = await download(acsmPath, deviceDir, join(ctx.workDir, "download-2"), ctx);
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
