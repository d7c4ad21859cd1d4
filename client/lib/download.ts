import { randomBytes } from "node:crypto";
import { constants as fsConstants, createWriteStream } from "node:fs";
import { copyFile, link, mkdir, stat, unlink } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { CliError } from "./failures";
import { networkFailure, openResponse, readAll, type ConnectTo } from "./http";

/**
 * Makes the service's file name safe to create in the output folder: no path separators, no
 * control characters, no leading dots (hidden files, `..`), at most 200 bytes.
 */
export function sanitizeFileName(name: string): string {
  let cleaned = Array.from(name, (c) => (c.charCodeAt(0) < 0x20 || c === "\u007f" || /[/\\:*?"<>|]/.test(c) ? "_" : c))
    .join("")
    .trim()
    .replace(/^\.+/, "");
  if (cleaned === "") cleaned = "book";
  if (Buffer.byteLength(cleaned) <= 200) return cleaned;
  const ext = extname(cleaned);
  let stem = cleaned.slice(0, cleaned.length - ext.length);
  while (Buffer.byteLength(stem + ext) > 200) stem = stem.slice(0, -1);
  return stem + ext;
}

/** `Title.epub`, `Title (1).epub`, `Title (2).epub`… */
export function candidateName(name: string, n: number): string {
  if (n === 0) return name;
  const ext = extname(name);
  return `${name.slice(0, name.length - ext.length)} (${n})${ext}`;
}

/** Explains a file-system failure writing into `dir`. */
export function diskFailure(err: unknown, dir: string): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new CliError("disk-full", `The disk holding ${dir} is full (${code}): free some space and retry.`, {}, { cause: err });
  }
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new CliError("output-folder", `Cannot write into ${dir} (${code}): choose a folder you can write to with --out.`, {}, { cause: err });
  }
  if (code === "ENOTDIR" || code === "EEXIST") {
    return new CliError("output-folder", `${dir} is not a folder: pass a folder with --out.`, {}, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError("output-folder", `Cannot save into ${dir}: ${message}`, {}, { cause: err });
}

/** Makes sure `dir` exists and is a folder. */
export async function prepareOutputFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
  } catch (err) {
    throw diskFailure(err, dir);
  }
}

/**
 * Gives the finished temporary file its final name without ever replacing a file: `link` fails
 * with EEXIST where `rename` would overwrite, so even a file created meanwhile by someone else is
 * kept, and the next free name is taken.
 */
async function claimFreeName(tmp: string, dir: string, name: string): Promise<string> {
  for (let n = 0; n < 10_000; n++) {
    const target = join(dir, candidateName(name, n));
    try {
      await link(tmp, target);
      return target;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") continue;
      // File systems without hard links (FAT, some network shares): an exclusive copy still never
      // overwrites, it is only not atomic.
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS" && code !== "EOPNOTSUPP") throw err;
      try {
        await copyFile(tmp, target, fsConstants.COPYFILE_EXCL);
        return target;
      } catch (copyErr) {
        if ((copyErr as NodeJS.ErrnoException).code !== "EEXIST") throw copyErr;
      }
    }
  }
  throw new CliError("output-folder", `Too many files named like ${name} in ${dir}.`);
}

/** Progress of one download. */
export interface DownloadProgress {
  start(totalBytes: number | undefined): void;
  advance(bytes: number): void;
}

/** Options for {@link downloadToFolder}. */
export interface DownloadOptions {
  readonly url: URL;
  readonly dir: string;
  readonly filename: string;
  /** The size the service reported; the file is kept only when the bytes match. */
  readonly expectedBytes?: number;
  readonly expiresAt?: string;
  readonly progress?: DownloadProgress;
  readonly signal?: AbortSignal;
  readonly connectTo?: ConnectTo;
}

/** S3's (and `knock serve`'s) answer to an expired presigned URL: 403 AccessDenied "Request has expired". */
function downloadFailure(status: number, body: string, url: URL, expiresAt: string | undefined): CliError {
  const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]+)<\/Message>/.exec(body)?.[1];
  if (status === 403 && /expired/i.test(message ?? "")) {
    return new CliError(
      "download-expired",
      `The download link expired${expiresAt ? ` at ${expiresAt}` : ""}: convert the ACSM again for a fresh link.`,
      { status, errorType: code },
    );
  }
  const what = code ? `${code}${message ? `: ${message}` : ""}` : body.trim().slice(0, 200) || "no details";
  return new CliError("download", `Downloading the book from ${url.host} failed (HTTP ${status}, ${what}).`, { status, errorType: code });
}

/**
 * Downloads `url` into `dir` under a free variant of `filename`: written to a temporary file in the
 * same folder and named only once complete and of the expected size; removed on any failure or
 * abort (Ctrl-C). Returns the path written.
 */
export async function downloadToFolder(options: DownloadOptions): Promise<string> {
  const { url, dir } = options;
  const name = sanitizeFileName(basename(options.filename.replace(/\\/g, "/")) || options.filename);
  const res = await openResponse({ method: "GET", url, headers: {} }, { signal: options.signal, connectTo: options.connectTo, idleTimeoutMs: 120_000 });
  if (res.statusCode !== 200) {
    const body = (await readAll(res, url)).toString("utf8");
    throw downloadFailure(res.statusCode ?? 0, body, url, options.expiresAt);
  }
  const lengthHeader = res.headers["content-length"];
  const total = lengthHeader !== undefined ? Number(lengthHeader) : options.expectedBytes;
  options.progress?.start(total);

  const tmp = join(dir, `.${name}.${randomBytes(4).toString("hex")}.part`);
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      options.progress?.advance(chunk.length);
      done(null, chunk);
    },
  });
  try {
    try {
      await pipeline(res, counter, createWriteStream(tmp, { flags: "wx", mode: 0o644 }), { signal: options.signal });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.name === "AbortError") throw err;
      // Errors from the socket are the network's; errors with a syscall on a path are the disk's.
      if (e.syscall === "open" || e.syscall === "write" || e.code === "ENOSPC" || e.code === "EDQUOT" || e.code === "EROFS" || e.code === "EACCES") {
        throw diskFailure(err, dir);
      }
      throw networkFailure(err, url);
    }
    const expected = lengthHeader !== undefined ? Number(lengthHeader) : options.expectedBytes;
    if (expected !== undefined && received !== expected) {
      throw new CliError("download", `The download from ${url.host} ended after ${received} of ${expected} bytes; retry the conversion.`);
    }
    try {
      return await claimFreeName(tmp, dir, name);
    } catch (err) {
      throw err instanceof CliError ? err : diskFailure(err, dir);
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
