import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { LibgourouError, mapLibgourouError, runLibgourou } from "./libgourou";
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
}

async function download(acsmPath: string, deviceDir: string, outDir: string, ctx: ConvertContext): Promise<string> {
  await mkdir(outDir);
  // Without -o the tool names the file after the book's title and appends the right extension,
  // which adept_remove needs to pick the format.
  await runLibgourou(ctx.toolsDir, "acsmdownloader", ["-D", deviceDir, "-O", outDir, acsmPath], ctx.timeLeftMs());
  const books = (await readdir(outDir)).filter((name) => extname(name).toLowerCase() in CONTENT_TYPES);
  if (books.length !== 1) {
    throw new ServiceError(500, "ConversionFailed", `acsmdownloader succeeded but produced ${books.length} EPUB/PDF files, expected one.`);
  }
  return join(outDir, books[0]);
}

/**
 * Fulfils the ACSM with the shared device and removes the DRM. When the server answers
 * `E_ADEPT_REQUEST_EXPIRED` the stored device is no longer accepted: it is reset, a new one is
 * activated and the download retried once. Tool failures become the {@link ServiceError} the caller answers with.
 */
export async function convertAcsm(acsm: string, ctx: ConvertContext): Promise<ConvertedBook> {
  const acsmPath = join(ctx.workDir, "request.acsm");
  await writeFile(acsmPath, acsm);
  try {
    let deviceDir = await ctx.devices.get(ctx.log, ctx.timeLeftMs);
    let encrypted: string;
    try {
      encrypted = await download(acsmPath, deviceDir, join(ctx.workDir, "download-1"), ctx);
    } catch (err) {
      if (!(err instanceof LibgourouError && err.isServerError("E_ADEPT_REQUEST_EXPIRED"))) throw err;
      ctx.log.warn("ADEPT server answered E_ADEPT_REQUEST_EXPIRED; re-activating and retrying once");
      await ctx.devices.reset(ctx.log);
      deviceDir = await ctx.devices.get(ctx.log, ctx.timeLeftMs);
      encrypted = await download(acsmPath, deviceDir, join(ctx.workDir, "download-2"), ctx);
    }
    const filename = basename(encrypted);
    const outDir = join(ctx.workDir, "book");
    await mkdir(outDir);
    const output = join(outDir, filename);
    await runLibgourou(ctx.toolsDir, "adept_remove", ["-D", deviceDir, "-f", encrypted, "-o", output], ctx.timeLeftMs());
    const { size } = await stat(output);
    return { path: output, filename, contentType: CONTENT_TYPES[extname(filename).toLowerCase()], sizeBytes: size };
  } catch (err) {
    if (err instanceof LibgourouError) throw mapLibgourouError(err);
    throw err;
  }
}
