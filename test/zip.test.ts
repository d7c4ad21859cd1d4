// lambda/src/zip.ts: what it writes (archiver) reads back and passes Info-ZIP's `unzip -t`; what it
// reads (yauzl) refuses hostile zips built byte by byte here after APPNOTE.TXT 6.3 §4.3.7 (local
// header), §4.3.12 (central directory header) and §4.3.16 (end of central directory record).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateRawSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { readZip, writeZip, ZipProblem, type ZipReadLimits } from "../lambda/src/zip";

const roomy: ZipReadLimits = { maxArchiveBytes: 1024 * 1024, maxEntries: 16, maxEntryBytes: 1024 * 1024, maxTotalBytes: 1024 * 1024 };

interface RawEntry {
  readonly name: string;
  readonly data?: Buffer;
  /** Bytes stored as the entry's data; default: `data` deflated (method 8) or as is (method 0). */
  readonly raw?: Buffer;
  readonly method?: number;
  readonly flags?: number;
  /** Unix mode (st_mode) for the high 16 bits of the external attributes. */
  readonly mode?: number;
  /** Uncompressed size written in both headers; default: the data's true length. */
  readonly size?: number;
  readonly crc?: number;
}

/** A zip made by hand, so that each header field says exactly what a test needs (made by Unix, version 2.0). */
function rawZip(entries: readonly RawEntry[], { count }: { count?: number } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const method = e.method ?? 8;
    const stored = e.raw ?? (method === 8 ? deflateRawSync(data) : data);
    const name = Buffer.from(e.name, "utf8");
    const flags = (e.flags ?? 0) | 0x800; // names in UTF-8 (§4.4.4 bit 11)
    const crc = e.crc ?? crc32(data);
    const size = e.size ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE((3 << 8) | 20, 4); // made by Unix (§4.4.2), so the mode below is st_mode
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(flags, 8);
    header.writeUInt16LE(method, 10);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(stored.length, 20);
    header.writeUInt32LE(size, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE(((e.mode ?? (e.name.endsWith("/") ? 0o40755 : 0o100644)) << 16) >>> 0, 38);
    header.writeUInt32LE(offset, 42);
    parts.push(local, name, stored);
    central.push(header, name);
    offset += local.length + name.length + stored.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count ?? entries.length, 8);
  end.writeUInt16LE(count ?? entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** The central directory's entries of a zip: name, method, flags, Unix mode, local header offset. */
function centralEntries(zip: Buffer): { name: string; method: number; flags: number; mode: number; local: number }[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const out = [];
  for (let i = 0; i < count; i++) {
    const nameLength = zip.readUInt16LE(at + 28);
    out.push({
      name: zip.subarray(at + 46, at + 46 + nameLength).toString("utf8"),
      method: zip.readUInt16LE(at + 10),
      flags: zip.readUInt16LE(at + 8),
      mode: zip.readUInt32LE(at + 38) >>> 16,
      local: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return out;
}

const refusal = async (zip: Buffer, limits: ZipReadLimits = roomy): Promise<ZipProblem> => {
  const err: unknown = await readZip(zip, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ZipProblem);
  return err as ZipProblem;
};

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("writeZip", () => {
  const book = [
    { name: "mimetype", data: Buffer.from("application/epub+zip"), store: true },
    { name: "META-INF/container.xml", data: Buffer.from("<container/>".repeat(50)) },
    { name: "OEBPS/chapitre-été.xhtml", data: Buffer.from("<p>où</p>".repeat(200)), mode: 0o600 },
    { name: "OEBPS/cover.jpg", data: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) & 0xff)) },
    { name: "empty", data: Buffer.alloc(0) },
  ];

  it("reads back as the same entries, in the same order", async () => {
    const zip = await writeZip(book);
    const read = await readZip(zip, roomy);
    expect(read.map((e) => e.name)).toEqual(book.map((e) => e.name));
    read.forEach((entry, i) => expect(entry.data.equals(book[i]!.data), entry.name).toBe(true));
  });

  it("writes a stored entry first with no extra field, as OCF requires of an EPUB's mimetype", async () => {
    const zip = await writeZip(book);
    // Local header (§4.3.7): signature, then the compression method at byte 8; the name at 30, and
    // with no extra field the content follows at once — what EPUB checkers read at bytes 30–57.
    expect(zip.readUInt32LE(0)).toBe(0x04034b50);
    expect(zip.readUInt16LE(8)).toBe(0);
    expect(zip.readUInt16LE(28)).toBe(0);
    expect(zip.subarray(30, 58).toString("latin1")).toBe("mimetypeapplication/epub+zip");
    const entries = centralEntries(zip);
    expect(entries.map((e) => [e.name, e.method])).toEqual([
      ["mimetype", 0],
      ["META-INF/container.xml", 8],
      ["OEBPS/chapitre-été.xhtml", 8],
      ["OEBPS/cover.jpg", 8],
      ["empty", 0],
    ]);
    // Every other entry's local header agrees with the central directory on the method.
    for (const e of entries) expect(zip.readUInt16LE(e.local + 8), e.name).toBe(e.method);
  });

  it("records each entry's Unix mode (regular file, 0644 unless told) and UTF-8 names", async () => {
    const entries = centralEntries(await writeZip(book));
    expect(entries.find((e) => e.name === "OEBPS/chapitre-été.xhtml")).toMatchObject({ mode: 0o100600 });
    expect(entries.find((e) => e.name === "mimetype")).toMatchObject({ mode: 0o100644 });
    expect(entries.find((e) => e.name === "OEBPS/chapitre-été.xhtml")!.flags & 0x800).toBe(0x800);
  });

  it("writes what Info-ZIP's unzip tests clean and lists with the same names and modes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "knock-zip-"));
    scratch.push(dir);
    const file = join(dir, "book.zip");
    writeFileSync(file, await writeZip(book));
    const tested = execFileSync("unzip", ["-t", file], { encoding: "utf8" });
    expect(tested).toContain(`No errors detected in compressed data of ${file}.`);
    const listing = execFileSync("unzip", ["-Z", file], { encoding: "utf8" });
    expect(listing).toMatch(/^-rw-------.* OEBPS\/chapitre-été\.xhtml$/m);
    expect(listing).toMatch(/^-rw-r--r--.* stor .* mimetype$/m);
  });

  it("refuses names archiver would rewrite and duplicates, instead of writing other names", async () => {
    for (const name of ["/etc/passwd", "a\\b", "../up", "a//b", "./a", "C:x"]) {
      await expect(writeZip([{ name, data: Buffer.from("x") }]), name).rejects.toThrow(ZipProblem);
    }
    await expect(writeZip([{ name: "a", data: Buffer.from("1") }, { name: "a", data: Buffer.from("2") }])).rejects.toThrow(/"a" twice/);
  });
});

describe("readZip", () => {
  it("skips folder entries and reads stored and deflated files", async () => {
    const zip = rawZip([{ name: "OEBPS/" }, { name: "OEBPS/a.txt", data: Buffer.from("deflated ".repeat(20)) }, { name: "b.txt", data: Buffer.from("stored"), method: 0 }]);
    const read = await readZip(zip, roomy);
    expect(read.map((e) => [e.name, e.data.toString()])).toEqual([
      ["OEBPS/a.txt", "deflated ".repeat(20)],
      ["b.txt", "stored"],
    ]);
  });

  describe("refuses, naming the entry", () => {
    const fine = { name: "fine.txt", data: Buffer.from("fine") };
    const cases: [string, Buffer, RegExp][] = [
      ["a ../ path", rawZip([fine, { name: "a/../../x", data: Buffer.from("x") }]), /outside its folder \(\.\.\): "a\/\.\.\/\.\.\/x"/],
      ["a ../ folder", rawZip([{ name: "../" }, fine]), /outside its folder \(\.\.\): "\.\.\/"/],
      ["an absolute path", rawZip([{ name: "/etc/cron.d/x", data: Buffer.from("x") }]), /absolute path: "\/etc\/cron\.d\/x"/],
      ["a drive letter", rawZip([{ name: "C:/x", data: Buffer.from("x") }]), /absolute path: "C:\/x"/],
      ["a backslash", rawZip([{ name: "..\\x", data: Buffer.from("x") }]), /backslash in its name: "\.\.\\\\x"/],
      ["a NUL", rawZip([{ name: "x\0.txt", data: Buffer.from("x") }]), /NUL in its name: "x\\u0000\.txt"/],
      ["a symbolic link", rawZip([fine, { name: "link", data: Buffer.from("/etc/passwd"), mode: 0o120777 }]), /symbolic link: "link"/],
      ["a traditionally encrypted entry", rawZip([{ name: "secret", data: Buffer.from("x"), flags: 0x1 }]), /"secret" in the zip is encrypted/],
      ["an AES entry (method 99)", rawZip([{ name: "aes", data: Buffer.from("x"), raw: Buffer.from("x"), method: 99 }]), /"aes" in the zip is encrypted/],
      ["bzip2 (method 12)", rawZip([{ name: "b.bz2", data: Buffer.from("x"), raw: Buffer.from("BZh9"), method: 12 }]), /"b\.bz2" in the zip uses compression method 12/],
      ["a duplicate", rawZip([fine, fine]), /holds "fine\.txt" twice/],
      ["a wrong CRC-32", rawZip([{ ...fine, crc: 0x12345678 }]), /"fine\.txt" in the zip is damaged \(its CRC-32 does not match\)/],
      ["a stored entry whose sizes differ", rawZip([{ name: "s", data: Buffer.from("abc"), method: 0, size: 2 }]), /"s" in the zip is damaged \(stored, yet 3 bytes hold 2\)/],
      ["a header claiming more than it inflates to", rawZip([{ ...fine, size: 10 }]), /"fine\.txt" in the zip is damaged \(it inflates to 4 bytes, its header says 10\)/],
      ["damaged deflate data", rawZip([{ name: "bad", data: Buffer.from("x"), raw: Buffer.from([0xff, 0xff, 0xff]) }]), /"bad" in the zip is damaged/],
      ["something that is not a zip", Buffer.from("hello, not a zip at all"), /not a zip/],
    ];
    for (const [what, zip, message] of cases) {
      it(what, async () => {
        expect((await refusal(zip)).message).toMatch(message);
      });
    }
  });

  describe("limits", () => {
    const small: ZipReadLimits = { maxArchiveBytes: 64 * 1024, maxEntries: 4, maxEntryBytes: 1000, maxTotalBytes: 1500 };
    // Not deflate data at all: a refusal that names a size proves nothing was inflated.
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff]);

    it("refuses a 100 MB zip by its length, though it is a valid zip", async () => {
      const data = Buffer.alloc(100 * 1024 * 1024);
      const zip = rawZip([{ name: "big", data, method: 0 }]);
      const limits = { ...roomy, maxEntryBytes: zip.length, maxTotalBytes: zip.length };
      expect((await refusal(zip, limits)).message).toBe(`the zip is ${zip.length} bytes; at most ${roomy.maxArchiveBytes} are accepted`);
      expect((await readZip(zip, { ...limits, maxArchiveBytes: zip.length }))[0]!.data.length).toBe(data.length);
    }, 60_000);

    it("refuses too many entries from the end record, before reading any entry", async () => {
      // The end record claims 5000 entries over a central directory that holds one.
      const zip = rawZip([{ name: "a", data: Buffer.from("a") }], { count: 5000 });
      expect((await refusal(zip, small)).message).toBe("the zip lists 5000 entries; at most 4 are accepted");
      const five = rawZip(["a", "b", "c", "d", "e"].map((name) => ({ name, data: Buffer.from(name) })));
      expect((await refusal(five, small)).message).toMatch(/lists 5 entries; at most 4/);
    });

    it("refuses an entry declared over the entry limit before inflating it", async () => {
      const zip = rawZip([{ name: "big", raw: garbage, size: 1001, crc: 0 }]);
      expect((await refusal(zip, small)).message).toBe(`"big" in the zip would inflate to 1001 bytes; at most 1000 per entry are accepted`);
    });

    it("refuses entries declared over the total before inflating any", async () => {
      const zip = rawZip([
        { name: "one", raw: garbage, size: 800, crc: 0 },
        { name: "two", raw: garbage, size: 800, crc: 0 },
      ]);
      expect((await refusal(zip, small)).message).toBe(`"two": the zip would inflate to more than 1500 bytes in all, the most accepted`);
    });

    it("stops an entry whose header lies about its size at the entry limit", async () => {
      const bomb = { name: "bomb", data: Buffer.alloc(50 * 1024 * 1024), size: 16 };
      expect((await refusal(rawZip([bomb]), small)).message).toBe(`"bomb" in the zip inflates to more than 1000 bytes, the most one entry may hold`);
    });

    it("stops entries whose headers lie at the total limit", async () => {
      const zip = rawZip([
        { name: "first", data: Buffer.alloc(900, 1) },
        { name: "second", data: Buffer.alloc(900, 2), size: 100 },
      ]);
      expect((await refusal(zip, small)).message).toBe(`"second": the zip inflates to more than 1500 bytes in all, the most accepted`);
    });

    it("accepts entries exactly at the limits", async () => {
      const zip = rawZip([
        { name: "a", data: Buffer.alloc(1000, 1) },
        { name: "b", data: Buffer.alloc(500, 2) },
      ]);
      expect((await readZip(zip, small)).map((e) => e.data.length)).toEqual([1000, 500]);
    });
  });
});
