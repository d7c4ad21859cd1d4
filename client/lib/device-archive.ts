import { lstat, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { DEVICE_FILES, readZip, writeZip, ZipProblem, type DeviceFiles, type ZipEntry } from "../../lambda/src/public";

// The device as it travels between this service, `knock serve` and libgourou's own tools: the three
// files of libgourou's device folder (`-D DIR`: device.xml, activation.xml, devicesalt), as that
// folder or as a zip of it. The zip is read by lambda/src/zip.ts (yauzl, with limits): it holds a
// few KB, so anything large is refused before a byte is inflated, and any entry that could write
// outside a folder when unzipped (absolute, `..`, a symlink) or that is ambiguous (a duplicate)
// refuses the whole archive.

/** Largest archive accepted, checked on the file's size before it is read. */
export const MAX_ARCHIVE_BYTES = 1024 * 1024;
/** Largest total of the zip's files once inflated (the device files are a few KB). */
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

function isDeviceFile(name: string): name is (typeof DEVICE_FILES)[number] {
  return (DEVICE_FILES as readonly string[]).includes(name);
}

/**
 * The device files in a zip: libgourou's three file names at the zip's root or in one folder (an
 * exported `.adept/` folder, a Calibre plugin's backup); other entries are ignored.
 */
export async function readDeviceZip(zip: Buffer): Promise<DeviceFiles> {
  let entries: ZipEntry[];
  try {
    entries = await readZip(zip, { maxArchiveBytes: MAX_ARCHIVE_BYTES, maxEntries: MAX_ENTRIES, maxEntryBytes: MAX_UNCOMPRESSED_BYTES, maxTotalBytes: MAX_UNCOMPRESSED_BYTES });
  } catch (err) {
    if (err instanceof ZipProblem) throw new DeviceArchiveProblem(err.message);
    throw err;
  }
  const found = new Map<string, ZipEntry>();
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
  const out: Partial<Record<(typeof DEVICE_FILES)[number], Buffer>> = {};
  for (const name of DEVICE_FILES) out[name] = found.get(name)!.data;
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
    return await readDeviceZip(zip);
  } catch (err) {
    if (err instanceof DeviceArchiveProblem) throw new DeviceArchiveProblem(`${path}: ${err.message}`);
    throw err;
  }
}

/** A zip of the three device files at its root (deflated, mode 0600), as `unzip -d DIR` gives libgourou's `-D DIR`. */
export function writeDeviceZip(files: DeviceFiles, now: Date = new Date()): Promise<Buffer> {
  // 0600: the files hold the device's private key; unzip restores the mode, so the copy stays private.
  return writeZip(DEVICE_FILES.map((name) => ({ name, data: files[name], mode: 0o600, date: now })));
}
