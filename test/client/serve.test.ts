// `knock serve`: local storage that behaves like the buckets (the device survives restarts and
// follows S3's conditional-write rules; download links expire like presigned URLs), and the real
// `knock serve` process (free port, missing tools, exposure warning).
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { DEVICE_OBJECT_KEY } from "../../lambda/src/contract";
import { DEVICE_FILES, DeviceManager, deviceStore, encodeDevice, type DeviceFiles } from "../../lambda/src/device";
import { dataFolderObjects, pruneExpiredBooks } from "../../client/serve/data-folder";
import { downloadLinks } from "../../client/serve/download-links";
import { fileObjects } from "../../client/serve/file-objects";
import { makeAcsm, TOOLS_DIR } from "../handler/harness";
import { cleanup, knock, scratchDir, startKnock, startStandinService } from "./helpers";

const scratch: string[] = [];
afterAll(() => cleanup(scratch));

function post(url: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } }).then(async (r) => ({
    status: r.status,
    json: (await r.json()) as Record<string, unknown>,
  }));
}

function download(url: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((done, fail) => {
    get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on("error", fail);
  });
}

function activations(stateDir: string): number {
  const file = join(stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
}

const device = (n: string): DeviceFiles => ({ "device.xml": Buffer.from(`<d>${n}</d>`), "activation.xml": Buffer.from("<a/>"), devicesalt: Buffer.alloc(16, n.charCodeAt(0)) });

describe("local storage", () => {
  it("keeps the Adobe device across restarts: one activation for two server lifetimes", async () => {
    const dataDir = scratchDir("knock-data-", scratch);
    const stateDir = scratchDir("knock-state-", scratch);
    const first = await startStandinService({ dataDir, stateDir });
    const a = await post(first.url, JSON.stringify({ acsm_content: makeAcsm({ title: "One" }) }));
    await first.stop();
    expect(a.status).toBe(200);
    expect(activations(stateDir)).toBe(1);
    const stored = readFileSync(join(dataDir, DEVICE_OBJECT_KEY), "utf8");

    const second = await startStandinService({ dataDir, stateDir });
    const b = await post(second.url, JSON.stringify({ acsm_content: makeAcsm({ title: "Two" }) }));
    await second.stop();
    expect(b.status).toBe(200);
    expect(activations(stateDir)).toBe(1);
    expect(readFileSync(join(dataDir, DEVICE_OBJECT_KEY), "utf8")).toBe(stored);
    expect(second.logs.some((l) => l.includes("device loaded from store"))).toBe(true);
    // No temporary files are left next to the device or the books.
    expect(readdirSync(join(dataDir, "adept"))).toEqual(["device.json"]);
  });

  it("follows S3's conditional writes: If-None-Match * refuses a second device, If-Match needs the current ETag", async () => {
    const store = deviceStore(fileObjects(scratchDir("knock-dev-", scratch)));
    expect(await store.removeIfUnchanged('"0"')).toBe("absent"); // S3: 404 NoSuchKey
    const etag = await store.storeIfAbsent(device("a"));
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await store.storeIfAbsent(device("b"))).toBeUndefined(); // S3: 412 PreconditionFailed
    expect((await store.loadVersioned())?.files["device.xml"].toString()).toBe("<d>a</d>");
    expect((await store.loadVersioned())?.etag).toBe(etag);
    expect(await store.removeIfUnchanged('"ffffffffffffffffffffffffffffffff"')).toBe("changed"); // S3: 412
    expect(await store.removeIfUnchanged(etag!)).toBe("removed");
    expect(await store.load()).toBeUndefined();
    await store.remove(); // S3: DELETE of a missing key succeeds
    // Concurrent first writes: exactly one wins.
    const results = await Promise.all(["c", "d", "e"].map((n) => store.storeIfAbsent(device(n))));
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });

  it("replaces a device only at the version read (S3's PUT If-Match), and keeps a backup once", async () => {
    const dataDir = scratchDir("knock-dev-", scratch);
    const store = deviceStore(fileObjects(dataDir));
    expect(await store.replaceIfUnchanged(device("x"), '"0"')).toBe("absent"); // S3: 404 NoSuchKey
    const etag = (await store.storeIfAbsent(device("a")))!;
    expect(await store.replaceIfUnchanged(device("b"), '"ffffffffffffffffffffffffffffffff"')).toBe("changed"); // S3: 412
    expect((await store.load())?.["device.xml"].toString()).toBe("<d>a</d>");
    const old = (await store.loadVersioned())!;
    await store.keepBackup(old);
    const replaced = await store.replaceIfUnchanged(device("b"), etag);
    expect(replaced).toEqual({ etag: (await store.loadVersioned())!.etag });
    expect((await store.load())?.["device.xml"].toString()).toBe("<d>b</d>");
    // The version that was replaced can no longer be replaced; the backup stays as first written.
    expect(await store.replaceIfUnchanged(device("c"), etag)).toBe("changed");
    await store.keepBackup({ ...old, document: "something else" });
    expect(readFileSync(join(dataDir, `adept/backups/device-${etag.replace(/"/g, "")}.json`), "utf8")).toBe(old.document);
  });

  it("serves the book from its own signed link with S3's headers, and refuses it once the link expired or was altered", async () => {
    const dataDir = scratchDir("knock-data-", scratch);
    let clock = new Date("2026-11-26T10:00:00Z");
    const service = await startStandinService({ dataDir, now: () => clock, downloadUrlExpirySeconds: 60 });
    try {
      const answer = await post(service.url, JSON.stringify({ acsm_content: makeAcsm({ title: "Élan vital" }) }));
      expect(answer.status).toBe(200);
      const [file] = answer.json.output_files as Record<string, string>[];
      expect(file.download_url.startsWith(`${service.url}/_downloads/converted/`)).toBe(true);
      expect(file.expires_at).toBe("2026-11-26T10:01:00.000Z");

      const ok = await download(file.download_url);
      expect(ok.status).toBe(200);
      expect(ok.body.length).toBe(65536);
      expect(ok.headers["content-length"]).toBe("65536");
      expect(ok.headers["content-type"]).toBe("application/epub+zip");
      expect(ok.headers["content-disposition"]).toBe(`attachment; filename="_lan vital.epub"; filename*=UTF-8''%C3%89lan%20vital.epub`);

      const tampered = await download(file.download_url.replace(/expires=\d+/, (m) => `expires=${Number(m.slice(8)) + 3600}`));
      expect(tampered.status).toBe(403);
      expect(tampered.body.toString()).toContain("<Code>SignatureDoesNotMatch</Code>");

      clock = new Date("2026-11-26T10:01:01Z");
      const expired = await download(file.download_url);
      expect(expired.status).toBe(403);
      expect(expired.body.toString()).toContain("<Code>AccessDenied</Code><Message>Request has expired</Message>");
    } finally {
      await service.stop();
    }
  });

  it("drops the books no link can reach any more, like the output bucket's expiry, and keeps the rest", async () => {
    const dataDir = scratchDir("knock-data-", scratch);
    const now = new Date("2026-11-26T12:00:00Z");
    const book = (request: string, ageSeconds: number): string => {
      const dir = join(dataDir, "books", "converted", request);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, "Book.epub");
      writeFileSync(file, "x");
      const at = new Date(now.getTime() - ageSeconds * 1000);
      utimesSync(file, at, at);
      return file;
    };
    const old = book("req-old", 3601);
    const fresh = book("req-fresh", 3599);
    expect(await pruneExpiredBooks(dataFolderObjects(dataDir).books, 3600 * 1000, now)).toBe(1);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(join(dataDir, "books", "converted", "req-old"))).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(await pruneExpiredBooks(dataFolderObjects(join(dataDir, "nothing-here")).books, 1000, now)).toBe(0);
  });

  it("knock serve prunes expired books when it starts", async () => {
    const dataDir = scratchDir("knock-data-", scratch);
    const dir = join(dataDir, "books", "converted", "req-1");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "Old.epub"), "x");
    const longAgo = new Date(Date.now() - 2 * 3600 * 1000);
    utimesSync(join(dir, "Old.epub"), longAgo, longAgo);
    const service = await startStandinService({ dataDir, downloadUrlExpirySeconds: 3600 });
    try {
      // The start-up pruning runs in the background and logs once it has removed the books: wait
      // for that line (the file goes before it is written), then the removal it reports is done.
      await vi.waitFor(() => expect(service.logs).toContain("removed 1 converted book(s) whose download links had expired"), { timeout: 30_000, interval: 20 });
      expect(existsSync(join(dir, "Old.epub"))).toBe(false);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await service.stop();
    }
  }, 60_000);

  it("refuses object keys that would leave the books folder", async () => {
    const links = downloadLinks({ secret: Buffer.alloc(32), origin: () => "http://x" });
    const { books } = dataFolderObjects(scratchDir("knock-data-", scratch), links.make);
    await expect(books.presignGet("../../etc/passwd", "x", "text/plain", 60)).rejects.toThrow(/escapes/);
    await expect(books.get("converted/../../download-secret")).rejects.toThrow(/escapes/);
    await expect(books.put("/etc/passwd", "x", "text/plain")).rejects.toThrow(/escapes/);
  });

  it("keeps using a data folder written before the object-store port: its device, loans, books and link secret", async () => {
    // Prepare: the files at the paths every knock serve so far has written — the device bucket's
    // keys right under the folder, the output bucket's under books/, the link secret beside them.
    const dataDir = scratchDir("knock-data-", scratch);
    const stateDir = scratchDir("knock-state-", scratch);
    const manager = new DeviceManager(deviceStore(fileObjects(scratchDir("knock-activate-", scratch))), TOOLS_DIR, scratchDir("knock-cache-", scratch));
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const activated = await manager.get(quiet, () => 60_000, { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: stateDir });
    const files = Object.fromEntries(DEVICE_FILES.map((name) => [name, readFileSync(join(activated, name))])) as DeviceFiles;
    mkdirSync(join(dataDir, "adept", "loans"), { recursive: true });
    writeFileSync(join(dataDir, "adept", "device.json"), encodeDevice(files, new Date("2026-01-01T00:00:00Z")));
    writeFileSync(
      join(dataDir, "adept", "loans", "00000000000000aa.xml"),
      "<loanToken><id>urn:uuid:x</id><operatorURL>https://acs.library.test/f</operatorURL><validity>2099-01-01T00:00:00+00:00</validity><name>Kept</name></loanToken>",
    );
    mkdirSync(join(dataDir, "books", "converted", "req-old"), { recursive: true });
    writeFileSync(join(dataDir, "books", "converted", "req-old", "Old.epub"), "old book");
    const secret = Buffer.alloc(32, 7);
    writeFileSync(join(dataDir, "download-secret"), secret);
    const before = activations(stateDir);

    // Act
    const service = await startStandinService({ dataDir, stateDir });
    try {
      const converted = await post(service.url, JSON.stringify({ acsm_content: makeAcsm({ title: "New" }) }));
      const loans = (await (await fetch(`${service.url}/loans`)).json()) as { loans: { id: string; title: string }[] };
      const link = downloadLinks({ secret, origin: () => service.url }).make("converted/req-old/Old.epub", "Old.epub", "application/epub+zip", 600);
      const old = await download(link.url);

      // Assess: no new activation, the stored loan is listed, the old book is served by an old-secret link.
      expect(converted.status).toBe(200);
      expect(activations(stateDir)).toBe(before);
      expect(service.logs.some((l) => l.includes("device loaded from store"))).toBe(true);
      expect(loans.loans.map((l) => [l.id, l.title])).toEqual([["00000000000000aa", "Kept"]]);
      expect(old.status).toBe(200);
      expect(old.body.toString()).toBe("old book");
      const [file] = converted.json.output_files as { s3_key: string }[];
      expect(existsSync(join(dataDir, "books", file.s3_key))).toBe(true);
    } finally {
      await service.stop();
    }
  }, 120_000);
});

describe("the knock serve process", () => {
  it("--port 0 prints the address it chose; without tools health answers 500 ConverterMissing with a hint, and knock health exits 1", async () => {
    const data = scratchDir("knock-data-", scratch);
    const empty = scratchDir("knock-notools-", scratch);
    const { child, done } = startKnock(["serve", "--port", "0", "--data", data, "--tools", empty]);
    let stderr = "";
    const url = await new Promise<string>((resolveUrl, fail) => {
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) resolveUrl(m[1]);
      });
      child.on("exit", () => fail(new Error(`serve exited: ${stderr}`)));
    });
    try {
      expect(stderr).toContain("no converter tools in");
      const res = await fetch(url);
      expect(res.status).toBe(500);
      expect(res.headers.get("x-amzn-requestid")).toMatch(/^[0-9a-f-]{36}$/);
      const body = (await res.json()) as Record<string, string>;
      expect(body.error_type).toBe("ConverterMissing");
      expect(body.error).toContain("--tools DIR or LIBGOUROU_BIN_DIR");

      const health = await knock(["health", "--url", url]);
      expect(health.code).toBe(1);
      expect(health.stderr).toContain("ConverterMissing:");
      expect(health.stderr).toMatch(/request id [0-9a-f-]{36}/);

      // A second server on the same data folder is refused.
      const second = await knock(["serve", "--port", "0", "--data", data]);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain("another knock serve");
    } finally {
      child.kill("SIGINT");
    }
    const run = await done;
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/GET \/ 500 \d+ms request_id=/);
    expect(existsSync(join(data, "serve.lock"))).toBe(false);
  });

  it("beyond loopback asks for a token: makes one, prints its access link and QR code, and refuses requests without it", async () => {
    const data = scratchDir("knock-data-", scratch);
    const { child, done } = startKnock(["serve", "--host", "0.0.0.0", "--port", "0", "--data", data]);
    let stderr = "";
    await new Promise<void>((resolveUp) => {
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (/#token=\S+\n\n[\s\S]*▀/.test(stderr)) resolveUp();
      });
    });
    try {
      const port = /listening on http:\/\/0\.0\.0\.0:(\d+)/.exec(stderr)?.[1];
      const token = /#token=([A-Za-z0-9_-]{43})\n/.exec(stderr)?.[1];
      expect(port).toBeDefined();
      expect(token).toBeDefined();
      expect(stderr).toContain("every request but the page needs the access token");
      const base = `http://127.0.0.1:${port}/`;
      expect((await fetch(base)).status).toBe(401);
      expect((await fetch(base, { headers: { accept: "text/html" } })).status).toBe(200);
      expect((await fetch(base, { headers: { authorization: `Bearer ${token}` } })).status).not.toBe(401);
    } finally {
      child.kill("SIGTERM");
      await done;
    }
  });

});
