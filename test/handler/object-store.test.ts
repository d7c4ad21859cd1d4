// The object-store port (lambda/src/object-store.ts) the function's stores are written on: the same
// assertions against its S3 implementation, on a local S3-protocol server with S3's conditional rules
// (harness.ts), and against `knock serve`'s folder (client/serve/file-objects.ts) — so a store
// behaves the same on a bucket and on a data folder.
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../../lambda/src/handler";
import { loadConfig } from "../../lambda/src/config";
import { s3Objects, type ObjectStore } from "../../lambda/src/object-store";
import { fileObjects } from "../../client/serve/file-objects";
import { DEVICE_BUCKET, handlerEnv, startLocalS3, type LocalS3 } from "./harness";

const savedEnv = { ...process.env };
const scratch: string[] = [];
let s3: LocalS3 | undefined;

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

beforeAll(async () => {
  s3 = await startLocalS3();
  Object.assign(process.env, handlerEnv(s3));
}, 60_000);

afterAll(async () => {
  await s3?.close();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

const md5 = (text: string): string => `"${createHash("md5").update(text).digest("hex")}"`;

/** Each implementation, with a fresh key space per test (a folder, or a prefix in the bucket). */
const implementations: [string, () => { objects: ObjectStore; base: string }][] = [
  ["S3 (s3Objects)", () => ({ objects: s3Objects(createS3Client(loadConfig()), DEVICE_BUCKET), base: `t-${Math.random().toString(16).slice(2)}/` })],
  ["a folder (fileObjects)", () => ({ objects: fileObjects(tempDir("knock-objects-")), base: "" })],
];

describe.each(implementations)("the object store on %s", (_name, make) => {
  it("gets nothing for a missing key, and what a PUT stored with the quoted MD5 as ETag", async () => {
    const { objects, base } = make();
    expect(await objects.get(`${base}adept/none.json`)).toBeUndefined();
    await objects.put(`${base}adept/a.json`, "one", "application/json");
    await objects.put(`${base}adept/a.json`, "two", "application/json");
    const got = await objects.get(`${base}adept/a.json`);
    expect(got?.body.toString("utf8")).toBe("two");
    expect(got?.etag).toBe(md5("two"));
  });

  it("creates only where the key is free (If-None-Match: *), one winner among concurrent creates", async () => {
    const { objects, base } = make();
    expect(await objects.putIfAbsent(`${base}m`, "first", "application/json")).toEqual({ etag: md5("first") });
    expect(await objects.putIfAbsent(`${base}m`, "second", "application/json")).toBe("exists");
    expect((await objects.get(`${base}m`))?.body.toString()).toBe("first");
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => objects.putIfAbsent(`${base}race`, `n${i}`, "application/json")));
    expect(results.filter((r) => r !== "exists")).toHaveLength(1);
  });

  it("replaces and deletes only at the version read (If-Match): changed, absent, or done", async () => {
    const { objects, base } = make();
    const key = `${base}adept/device.json`;
    expect(await objects.putIfMatch(key, md5("x"), "y", "application/json")).toBe("absent");
    expect(await objects.deleteIfMatch(key, md5("x"))).toBe("absent");
    await objects.put(key, "a", "application/json");
    expect(await objects.putIfMatch(key, md5("other"), "b", "application/json")).toBe("changed");
    expect(await objects.deleteIfMatch(key, md5("other"))).toBe("changed");
    expect(await objects.putIfMatch(key, md5("a"), "b", "application/json")).toEqual({ etag: md5("b") });
    expect(await objects.putIfMatch(key, md5("a"), "c", "application/json")).toBe("changed");
    expect(await objects.deleteIfMatch(key, md5("b"))).toBe("removed");
    expect(await objects.get(key)).toBeUndefined();
    await objects.delete(key); // a plain DELETE of a missing key succeeds
  });

  it("lists every key under a prefix at any depth with when it was written, and nothing else", async () => {
    const { objects, base } = make();
    const before = Date.now() - 5_000;
    await objects.put(`${base}adept/loans/0123456789abcdef.xml`, "<t/>", "application/xml");
    await objects.put(`${base}adept/loans/0123456789abcdef.returning`, "{}", "application/json");
    await objects.put(`${base}adept/loans/deeper/x.xml`, "<t/>", "application/xml");
    await objects.put(`${base}adept/device.json`, "{}", "application/json");
    await objects.put(`${base}adept/loansX`, "not under the prefix", "text/plain");
    const listed = await objects.list(`${base}adept/loans/`);
    expect(listed.map((o) => o.key).sort()).toEqual(
      [`${base}adept/loans/0123456789abcdef.returning`, `${base}adept/loans/0123456789abcdef.xml`, `${base}adept/loans/deeper/x.xml`].sort(),
    );
    for (const o of listed) expect(o.lastModified.getTime()).toBeGreaterThan(before);
    expect(await objects.list(`${base}nothing/`)).toEqual([]);
    expect((await objects.list(`${base}adept/lo`)).length).toBe(4);
  });

  it("uploads a file as an object", async () => {
    const { objects, base } = make();
    const file = join(tempDir("knock-upload-"), "book.epub");
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
    writeFileSync(file, bytes);
    await objects.upload(`${base}converted/req/book.epub`, file, "application/epub+zip");
    expect((await objects.get(`${base}converted/req/book.epub`))?.body.equals(bytes)).toBe(true);
  });
});

describe("the S3 implementation's download link", () => {
  it("is a presigned GetObject with the attachment name and type, and says when it expires", async () => {
    const objects = s3Objects(createS3Client(loadConfig()), DEVICE_BUCKET);
    await objects.put("converted/req-link/Élan.epub", "book", "application/epub+zip");
    const started = Date.now();
    const link = await objects.presignGet("converted/req-link/Élan.epub", "Élan.epub", "application/epub+zip", 120);
    expect(Math.abs(link.expiresAt.getTime() - (started + 120_000))).toBeLessThan(5_000);
    const url = new URL(link.url);
    expect(url.searchParams.get("response-content-disposition")).toBe(`attachment; filename="_lan.epub"; filename*=UTF-8''%C3%89lan.epub`);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("120");
    const res = await fetch(link.url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("book");
  });
});

describe("the folder implementation", () => {
  it("makes links with the maker it was given, and none without one", async () => {
    const calls: unknown[][] = [];
    const withLinks = fileObjects(tempDir("knock-objects-"), {
      links: (...args) => {
        calls.push(args);
        return { url: "http://local/x", expiresAt: new Date(0) };
      },
    });
    expect(await withLinks.presignGet("converted/r/b.epub", "b.epub", "application/epub+zip", 60)).toEqual({ url: "http://local/x", expiresAt: new Date(0) });
    expect(calls).toEqual([["converted/r/b.epub", "b.epub", "application/epub+zip", 60]]);
    await expect(fileObjects(tempDir("knock-objects-")).presignGet("converted/r/b.epub", "b.epub", "x", 60)).rejects.toThrow(/no download links/);
  });

  it("refuses keys that would leave the folder or name a temporary file, and leaves no temporary file behind", async () => {
    const root = tempDir("knock-objects-");
    const objects = fileObjects(root);
    for (const key of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/", "", "a\0b", "a.0123456789ab.tmp"]) {
      await expect(objects.put(key, "x", "text/plain"), JSON.stringify(key)).rejects.toThrow(/escapes/);
    }
    await Promise.all(Array.from({ length: 5 }, (_, i) => objects.putIfAbsent("adept/device.json", `d${i}`, "application/json")));
    await objects.put("adept/device.json", "again", "application/json");
    expect(readdirSync(join(root, "adept"))).toEqual(["device.json"]);
  });

  it("does not list a write still in flight", async () => {
    const root = tempDir("knock-objects-");
    const objects = fileObjects(root);
    await objects.put("adept/loans/0123456789abcdef.xml", "<t/>", "application/xml");
    writeFileSync(join(root, "adept/loans/0123456789abcdef.xml.0123456789ab.tmp"), "half");
    expect((await objects.list("adept/loans/")).map((o) => o.key)).toEqual(["adept/loans/0123456789abcdef.xml"]);
  });
});
