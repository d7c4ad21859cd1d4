import { crc32, deflateRawSync, inflateRawSync } from "node:zlib";
import { lstat, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { DEVICE_FILES, type DeviceFiles } from "../../lambda/src/public";

// The device as it travels between this service, `knock serve` and libgourou's own tools: the three
// files of libgourou's device folder (`-D DIR`: device.xml, activation.xml, devicesalt), as that
// folder or as a zip of it. The zip is read here, with no dependency, strictly: it holds a few KB,
// so anything large is refused before a byte is inflated, and any entry that could write outside a
// folder when unzipped (absolute, `..`, a symlink) or that is ambiguous (a duplicate) refuses the
// whole archive. Zip layout: APPNOTE.TXT (PKWARE), sections 4.3.7 (local header), 4.3.12 (central
// directory header), 4.3.16 (end of central directory record).

/** Largest archive accepted, checked on the file's size before it is read. */
export const MAX_ARCHIVE_BYTES = 1024 * 1024;
/** Largest total of the device files once inflated (they are a few KB). */
export const MAX_UNCOMPRESSED_BYTES = 1024 * 1024;
/** Most entries an archive may list (a backup zip holds a handful). */
const MAX_ENTRIES = 256;

/** Why an archive or folder cannot be imported; the message names the file and the problem. */
export class DeviceArchiveProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceArchiveProblem";
  }
}

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const END_SIG = 0x06054b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

interface CentralEntry {
  readonly name: string;
  readonly flags: number;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

function isDeviceFile(name: string): name is (typeof DEVICE_FILES)[number] {
  return (DEVICE_FILES as readonly string[]).includes(name);
}

/** Refuses names that would leave the folder they are unzipped into. */
function checkName(name: string): void {
  if (name.includes("\0")) throw new DeviceArchiveProblem(`the zip holds an entry with a NUL in its name`);
  if (name.startsWith("/") || name.includes("\\") || /^[A-Za-z]:/.test(name)) {
    throw new DeviceArchiveProblem(`the zip holds an entry with an absolute or Windows path: ${JSON.stringify(name)}`);
  }
  if (name.split("/").some((segment) => segment === "..")) {
    throw new DeviceArchiveProblem(`the zip holds an entry that points outside its folder (..): ${JSON.stringify(name)}`);
  }
}

function endRecord(zip: Buffer): number {
  // The record is 22 bytes plus a comment of at most 65535.
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === END_SIG) return at;
  }
  throw new DeviceArchiveProblem("the file is not a zip (no end of central directory record)");
}

function centralDirectory(zip: Buffer): CentralEntry[] {
  const end = endRecord(zip);
  const disk = zip.readUInt16LE(end + 4);
  const cdDisk = zip.readUInt16LE(end + 6);
  const count = zip.readUInt16LE(end + 10);
  const cdSize = zip.readUInt32LE(end + 12);
  const cdOffset = zip.readUInt32LE(end + 16);
  if (disk !== 0 || cdDisk !== 0) throw new DeviceArchiveProblem("the zip spans several files; only a single-file zip is accepted");
  if (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) throw new DeviceArchiveProblem("the zip is a ZIP64 archive, far larger than a device");
  if (count > MAX_ENTRIES) throw new DeviceArchiveProblem(`the zip lists ${count} entries; a device backup holds a handful`);
  if (cdOffset + cdSize > end) throw new DeviceArchiveProblem("the zip's central directory is damaged");
  const entries: CentralEntry[] = [];
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > end || zip.readUInt32LE(at) !== CENTRAL_SIG) throw new DeviceArchiveProblem("the zip's central directory is damaged");
    const madeBy = zip.readUInt16LE(at + 4);
    const flags = zip.readUInt16LE(at + 8);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const external = zip.readUInt32LE(at + 38);
    if (at + 46 + nameLength > end) throw new DeviceArchiveProblem("the zip's central directory is damaged");
    const rawName = zip.subarray(at + 46, at + 46 + nameLength);
    const name = rawName.toString(flags & 0x800 ? "utf8" : "latin1");
    checkName(name);
    // The file type is in the high 16 bits of the external attributes when made on Unix (3) or macOS (19).
    const host = madeBy >> 8;
    if ((host === 3 || host === 19) && ((external >>> 16) & S_IFMT) === S_IFLNK) {
      throw new DeviceArchiveProblem(`the zip holds a symbolic link: ${JSON.stringify(name)}`);
    }
    entries.push({
      name,
      flags,
      method: zip.readUInt16LE(at + 10),
      crc: zip.readUInt32LE(at + 16),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localOffset: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  const seen = new Set<string>();
  for (const { name } of entries) {
    if (seen.has(name)) throw new DeviceArchiveProblem(`the zip holds ${JSON.stringify(name)} twice`);
    seen.add(name);
  }
  return entries;
}

function inflateEntry(zip: Buffer, entry: CentralEntry, budget: number): Buffer {
  const file = entry.name;
  if (entry.flags & 0x1) throw new DeviceArchiveProblem(`${file} in the zip is encrypted; export it without a password`);
  if (entry.size > budget) throw new DeviceArchiveProblem(`${file} in the zip would inflate to ${entry.size} bytes; the device files are a few KB`);
  const at = entry.localOffset;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== LOCAL_SIG) throw new DeviceArchiveProblem(`${file} in the zip is damaged (no local header)`);
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  if (start + entry.compressedSize > zip.length) throw new DeviceArchiveProblem(`${file} in the zip is damaged (truncated)`);
  const raw = zip.subarray(start, start + entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) data = Buffer.from(raw);
  else if (entry.method === 8) {
    try {
      // maxOutputLength stops a bomb whatever its header claims.
      data = inflateRawSync(raw, { maxOutputLength: budget });
    } catch (err) {
      const tooBig = (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || /buffer|length/i.test((err as Error).message);
      throw new DeviceArchiveProblem(
        tooBig ? `${file} in the zip inflates to more than ${MAX_UNCOMPRESSED_BYTES} bytes in all; the device files are a few KB` : `${file} in the zip is damaged (${(err as Error).message})`,
      );
    }
  } else throw new DeviceArchiveProblem(`${file} in the zip uses compression method ${entry.method}; only stored and deflated entries are read`);
  if (data.length !== entry.size || crc32(data) !== entry.crc) throw new DeviceArchiveProblem(`${file} in the zip is damaged (its size or CRC does not match)`);
  return data;
}

/**
 * The device files in a zip: libgourou's three file names at the zip's root or in one folder (an
 * exported `.adept/` folder, a Calibre plugin's backup); other entries are ignored.
 */
export function readDeviceZip(zip: Buffer): DeviceFiles {
  const entries = centralDirectory(zip).filter((e) => !e.name.endsWith("/"));
  const found = new Map<string, CentralEntry>();
  for (const entry of entries) {
    const segments = entry.name.split("/");
    const base = segments[segments.length - 1]!;
    if (!isDeviceFile(base)) continue;
    if (segments.length > 2) throw new DeviceArchiveProblem(`${entry.name} in the zip is nested too deep: put the device files at the zip's root or in one folder`);
    const other = found.get(base);
    if (other !== undefined) throw new DeviceArchiveProblem(`the zip holds ${base} twice (${other.name} and ${entry.name})`);
    found.set(base, entry);
  }
  const missing = DEVICE_FILES.filter((name) => !found.has(name));
  if (missing.length > 0) throw new DeviceArchiveProblem(`the zip holds no ${missing.join(", ")} (a device is libgourou's device.xml, activation.xml and devicesalt)`);
  const folders = new Set([...found.values()].map((e) => e.name.slice(0, e.name.length - e.name.split("/").pop()!.length)));
  if (folders.size > 1) throw new DeviceArchiveProblem(`the zip's device files are in different folders (${[...folders].map((f) => f || "the root").join(", ")})`);
  let budget = MAX_UNCOMPRESSED_BYTES;
  const out: Partial<Record<(typeof DEVICE_FILES)[number], Buffer>> = {};
  for (const name of DEVICE_FILES) {
    const data = inflateEntry(zip, found.get(name)!, budget);
    budget -= data.length;
    out[name] = data;
  }
  return out as DeviceFiles;
}

/** Reads the device at `path`: a zip (see {@link readDeviceZip}) or a folder holding the three files. */
export async function readDeviceInput(path: string): Promise<DeviceFiles> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    throw new DeviceArchiveProblem(err.code === "ENOENT" ? `${path} does not exist` : `cannot read ${path} (${err.message})`);
  });
  if (info.isDirectory()) {
    const out: Partial<Record<(typeof DEVICE_FILES)[number], Buffer>> = {};
    let total = 0;
    for (const name of DEVICE_FILES) {
      const file = join(path, name);
      const entry = await lstat(file).catch(() => undefined);
      if (entry === undefined) throw new DeviceArchiveProblem(`${file} does not exist (a device folder holds device.xml, activation.xml and devicesalt)`);
      if (!entry.isFile()) throw new DeviceArchiveProblem(`${file} is not a regular file${entry.isSymbolicLink() ? " (a symbolic link)" : ""}`);
      total += entry.size;
      if (total > MAX_UNCOMPRESSED_BYTES) throw new DeviceArchiveProblem(`${file} is too large (${entry.size} bytes); the device files are a few KB`);
      out[name] = await readFile(file);
    }
    return out as DeviceFiles;
  }
  if (!info.isFile()) throw new DeviceArchiveProblem(`${path} is neither a zip nor a folder`);
  // Refused by its size before anything is read or inflated.
  if (info.size > MAX_ARCHIVE_BYTES) throw new DeviceArchiveProblem(`${path} is ${info.size} bytes; a device zip is a few KB (at most ${MAX_ARCHIVE_BYTES} accepted)`);
  const handle = await open(path, "r");
  let zip: Buffer;
  try {
    zip = Buffer.alloc(info.size);
    await handle.read(zip, 0, info.size, 0);
  } finally {
    await handle.close();
  }
  try {
    return readDeviceZip(zip);
  } catch (err) {
    if (err instanceof DeviceArchiveProblem) throw new DeviceArchiveProblem(`${path}: ${err.message}`);
    throw err;
  }
}

function dosDateTime(at: Date): { time: number; date: number } {
  const year = Math.max(1980, at.getFullYear());
  return {
    time: (at.getHours() << 11) | (at.getMinutes() << 5) | Math.floor(at.getSeconds() / 2),
    date: ((year - 1980) << 9) | ((at.getMonth() + 1) << 5) | at.getDate(),
  };
}

/** A zip of the three device files at its root (deflated, mode 0600), as `unzip -d DIR` gives libgourou's `-D DIR`. */
export function writeDeviceZip(files: DeviceFiles, now: Date = new Date()): Buffer {
  const { time, date } = dosDateTime(now);
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const name of DEVICE_FILES) {
    const data = files[name];
    const packed = deflateRawSync(data);
    const nameBytes = Buffer.from(name, "utf8");
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(LOCAL_SIG, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x800, 6); // names in UTF-8
    local.writeUInt16LE(8, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(CENTRAL_SIG, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so the mode below counts
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(time, 12);
    central.writeUInt16LE(date, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(((S_IFREG | 0o600) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, packed);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(END_SIG, 0);
  end.writeUInt16LE(DEVICE_FILES.length, 8);
  end.writeUInt16LE(DEVICE_FILES.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
