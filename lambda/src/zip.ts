import type { Readable } from "node:stream";
import { crc32 } from "node:zlib";
import { ZipArchive } from "archiver";
import { fromBufferPromise, getFileNameLowLevel, type Entry, type ZipFile } from "yauzl";

// Zips the service and `knock` read from users (device imports, EPUBs) and write for them (device
// exports, EPUB copies). Reading is yauzl 3's, which parses the central directory, follows ZIP64 and
// the Info-ZIP Unicode Path extra field, refuses strong encryption and bounds-checks each entry's
// data against the file. What it leaves to its caller is added here: limits on entry count and
// sizes, symbolic links, traditional encryption, unknown compression methods, duplicate names, names
// with NUL, and the CRC-32 (yauzl's README, "No CRC-32 Checking"). Writing is archiver's zip format.
// Zip layout: PKWARE's APPNOTE.TXT 6.3.

/** A zip the service refuses to read: the message names the entry and the problem. */
export class ZipProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZipProblem";
  }
}

export interface ZipReadLimits {
  /** Largest zip accepted, checked on its length before anything is parsed. */
  readonly maxArchiveBytes: number;
  /** Most entries (files and folders) its central directory may list. */
  readonly maxEntries: number;
  /** Largest single entry, uncompressed. */
  readonly maxEntryBytes: number;
  /** Largest total of all entries, uncompressed. */
  readonly maxTotalBytes: number;
}

export interface ZipEntry {
  readonly name: string;
  readonly data: Buffer;
}

export interface ZipWriteEntry {
  readonly name: string;
  readonly data: Buffer;
  /** Keeps the entry uncompressed (method 0). @default false (deflated) */
  readonly store?: boolean;
  /** Unix permission bits, stored in the external attributes. @default 0o644 */
  readonly mode?: number;
  /** Modification time (DOS date/time, 2-second resolution). @default now */
  readonly date?: Date;
}

// APPNOTE.TXT 6.3 §4.4.2 and §4.4.15: for Unix-made entries the high 16 bits of the external
// attributes hold st_mode. Checked whatever the "made by" host says: Info-ZIP's unzip also reads
// those bits as a Unix mode from FAT-host entries when they are non-zero, so a link hides there too.
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
// APPNOTE.TXT 6.3 §4.4.4: bit 0 = traditional encryption, bit 6 = strong encryption; §4.4.5 method 99 = AES (APPNOTE appendix E).
const FLAG_ENCRYPTED = 0x1;
const FLAG_STRONG_ENCRYPTION = 0x40;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;
const METHOD_AES = 99;

const quoted = (name: string): string => JSON.stringify(name);

/** Refuses names that would land outside the folder they are unzipped into, or mean different files to different tools. */
function checkReadName(name: string): void {
  if (name === "") throw new ZipProblem("the zip holds an entry with an empty name");
  if (name.includes("\0")) throw new ZipProblem(`the zip holds an entry with a NUL in its name: ${quoted(name)}`);
  // yauzl 3 with strictFileNames keeps backslashes (instead of turning them into "/"), so they are seen here.
  if (name.includes("\\")) throw new ZipProblem(`the zip holds an entry with a backslash in its name: ${quoted(name)}`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) throw new ZipProblem(`the zip holds an entry with an absolute path: ${quoted(name)}`);
  if (name.split("/").includes("..")) throw new ZipProblem(`the zip holds an entry that points outside its folder (..): ${quoted(name)}`);
}

async function openZip(zip: Buffer): Promise<ZipFile> {
  try {
    // decodeStrings: false so that a bad name is refused here with its name in the message, not by
    // yauzl's own validateFileName; the name is decoded below with yauzl's getFileNameLowLevel.
    // validateEntrySizes: false because the sizes are checked here, against the limits first (see readData).
    return await fromBufferPromise(zip, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false, strictFileNames: true });
  } catch (err) {
    throw new ZipProblem(`the file is not a zip, or is damaged (${(err as Error).message})`);
  }
}

interface FileEntry {
  readonly name: string;
  readonly entry: Entry;
}

/** The central directory, every entry checked before a byte of data is read. */
async function centralDirectory(zipfile: ZipFile, limits: ZipReadLimits): Promise<FileEntry[]> {
  if (zipfile.entryCount > limits.maxEntries) throw new ZipProblem(`the zip lists ${zipfile.entryCount} entries; at most ${limits.maxEntries} are accepted`);
  const files: FileEntry[] = [];
  const seen = new Set<string>();
  let declared = 0;
  let read = 0;
  try {
    for await (const entry of zipfile.eachEntry()) {
      read++;
      const name = getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
      checkReadName(name);
      if (seen.has(name)) throw new ZipProblem(`the zip holds ${quoted(name)} twice`);
      seen.add(name);
      if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) throw new ZipProblem(`the zip holds a symbolic link: ${quoted(name)}`);
      if (name.endsWith("/")) continue; // a folder: nothing to read
      if (entry.generalPurposeBitFlag & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) || entry.compressionMethod === METHOD_AES) {
        throw new ZipProblem(`${quoted(name)} in the zip is encrypted; only zips without a password are read`);
      }
      if (entry.compressionMethod !== METHOD_STORED && entry.compressionMethod !== METHOD_DEFLATED) {
        throw new ZipProblem(`${quoted(name)} in the zip uses compression method ${entry.compressionMethod}; only stored (0) and deflated (8) entries are read`);
      }
      // A stored entry's data is its content (what yauzl 3's validateEntrySizes checks for method 0).
      if (entry.compressionMethod === METHOD_STORED && entry.compressedSize !== entry.uncompressedSize) {
        throw new ZipProblem(`${quoted(name)} in the zip is damaged (stored, yet ${entry.compressedSize} bytes hold ${entry.uncompressedSize})`);
      }
      if (entry.uncompressedSize > limits.maxEntryBytes) {
        throw new ZipProblem(`${quoted(name)} in the zip would inflate to ${entry.uncompressedSize} bytes; at most ${limits.maxEntryBytes} per entry are accepted`);
      }
      declared += entry.uncompressedSize;
      if (declared > limits.maxTotalBytes) {
        throw new ZipProblem(`${quoted(name)}: the zip would inflate to more than ${limits.maxTotalBytes} bytes in all, the most accepted`);
      }
      files.push({ name, entry });
    }
  } catch (err) {
    if (err instanceof ZipProblem) throw err;
    throw new ZipProblem(`the zip is damaged at entry ${read + 1} of ${zipfile.entryCount} (${(err as Error).message})`);
  }
  return files;
}

/**
 * One entry's data, inflated with a cap: the header's size is the claim, the byte count while
 * inflating is the truth. Over `room` the stream is destroyed at once, so a header that lies
 * inflates no further than the limit; a count or CRC-32 that differs from the header is damage.
 */
async function readData(zipfile: ZipFile, file: FileEntry, room: number, tooBig: string): Promise<Buffer> {
  const { name, entry } = file;
  let stream: Readable;
  try {
    stream = await zipfile.openReadStreamPromise(entry);
  } catch (err) {
    throw new ZipProblem(`${quoted(name)} in the zip is damaged (${(err as Error).message})`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  let crc = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => {
      length += chunk.length;
      if (length > room) {
        stream.destroy();
        reject(new ZipProblem(tooBig));
        return;
      }
      crc = crc32(chunk, crc);
      chunks.push(chunk);
    });
    stream.on("error", (err: Error) => reject(new ZipProblem(`${quoted(name)} in the zip is damaged (${err.message})`)));
    stream.on("end", () => resolve());
  });
  if (length !== entry.uncompressedSize) {
    throw new ZipProblem(`${quoted(name)} in the zip is damaged (it inflates to ${length} bytes, its header says ${entry.uncompressedSize})`);
  }
  if (crc !== entry.crc32) throw new ZipProblem(`${quoted(name)} in the zip is damaged (its CRC-32 does not match)`);
  return Buffer.concat(chunks, length);
}

/** Every file entry in central-directory order (directories skipped). Refuses, with ZipProblem naming the entry: names that are absolute, contain `..` segments or backslashes/NUL; symbolic links (Unix mode in the external attributes); encrypted entries; unsupported compression; duplicate names; anything over the limits — checked from the central directory BEFORE inflating, and enforced while inflating (a lying header must not inflate past the limit); a corrupt zip. Fast on hostile input (a 100 MB zip is refused in milliseconds, from its size, without parsing). */
export async function readZip(zip: Buffer, limits: ZipReadLimits): Promise<ZipEntry[]> {
  if (zip.length > limits.maxArchiveBytes) throw new ZipProblem(`the zip is ${zip.length} bytes; at most ${limits.maxArchiveBytes} are accepted`);
  const zipfile = await openZip(zip);
  try {
    const files = await centralDirectory(zipfile, limits);
    const out: ZipEntry[] = [];
    let total = 0;
    for (const file of files) {
      // Whichever limit is nearer caps this entry, and the message names that limit.
      const left = limits.maxTotalBytes - total;
      const data =
        left < limits.maxEntryBytes
          ? await readData(zipfile, file, left, `${quoted(file.name)}: the zip inflates to more than ${limits.maxTotalBytes} bytes in all, the most accepted`)
          : await readData(zipfile, file, limits.maxEntryBytes, `${quoted(file.name)} in the zip inflates to more than ${limits.maxEntryBytes} bytes, the most one entry may hold`);
      total += data.length;
      out.push({ name: file.name, data });
    }
    return out;
  } finally {
    zipfile.close();
  }
}

/** Refuses names archiver would rewrite (its sanitizePath drops leading "/", "../" and drive letters and turns "\" into "/"), so the zip holds exactly the names given. */
function checkWriteName(name: string): void {
  checkReadName(name);
  if (name.split("/").some((segment) => segment === "" || segment === ".")) throw new ZipProblem(`cannot write ${quoted(name)}: empty or "." path segments`);
  // APPNOTE.TXT 6.3 §4.4.10: the name's length is a 16-bit field.
  if (Buffer.byteLength(name, "utf8") > 0xffff) throw new ZipProblem(`cannot write ${quoted(name.slice(0, 80))}…: names are at most 65535 bytes`);
}

/** A zip of `entries` in the given order; `store: true` keeps an entry uncompressed (an EPUB's `mimetype` must be the first entry and stored, OCF 3.x §4.3). */
export async function writeZip(entries: readonly ZipWriteEntry[]): Promise<Buffer> {
  const seen = new Set<string>();
  for (const { name } of entries) {
    checkWriteName(name);
    if (seen.has(name)) throw new ZipProblem(`cannot write ${quoted(name)} twice`);
    seen.add(name);
  }
  // forceZip64 off: the entries are in memory, far below 4 GiB, and ZIP64 records only narrow who can read them.
  const archive = new ZipArchive({ forceZip64: false });
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    archive.on("data", (chunk: Buffer) => chunks.push(chunk));
    archive.on("end", () => resolve());
    archive.on("error", reject);
    // archiver reports a skipped or altered entry as a warning; a zip missing an entry is a failure.
    archive.on("warning", reject);
  });
  const now = new Date();
  for (const entry of entries) {
    archive.append(entry.data, { name: entry.name, store: entry.store ?? false, mode: entry.mode ?? 0o644, date: entry.date ?? now });
  }
  // Both are awaited together, so a failure of either is reported and neither is left unhandled.
  await Promise.all([done, archive.finalize()]);
  return Buffer.concat(chunks);
}
