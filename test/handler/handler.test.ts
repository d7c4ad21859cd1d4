// End-to-end tests of the real handler: a real S3-protocol server on 127.0.0.1, the libgourou
// stand-ins as the converter, a fake Lambda context. Nothing leaves 127.0.0.1.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHandler, createS3Client, entryPoint } from "../../lambda/src/handler";
import { testHandler, type TestHandlerDeps } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import { deviceStore as deviceStoreOn, type DeviceStore } from "../../lambda/src/device";
import { s3Objects } from "../../lambda/src/object-store";
import { isPublicAddress } from "../../lambda/src/address-policy";
import type { Resolver } from "../../lambda/src/fetch-acsm";
import {
  DEVICE_BUCKET,
  OUTPUT_BUCKET,
  fakeContext,
  handlerEnv,
  makeAcsm,
  selfSignedCert,
  startLocalS3,
  urlEvent,
  standinEnv,
  startFakeDistributor,
  testEgress,
  type FakeDistributor,
  type LocalS3,
} from "./harness";

let s3: LocalS3;
let distributor: FakeDistributor;
let deviceStore: DeviceStore;
let stateDir: string;
const savedEnv = { ...process.env };
const logs: string[] = [];
/** Temp directories the tests create (container /tmp roots), removed after the file. */
const scratch: string[] = [];

/** Test DNS: names under .test resolve as listed, anything else fails, no real DNS. */
const hosts: Record<string, string> = {
  "books.example.test": "127.0.0.1",
  "loopback.example.test": "127.0.0.1",
  "private.example.test": "10.0.0.7",
  "metadata.example.test": "169.254.169.254",
  "mapped.example.test": "::ffff:127.0.0.1",
  "cgnat.example.test": "100.64.1.2",
  "ula.example.test": "fd00::1",
};
const resolver: Resolver = async (hostname) => {
  const address = hosts[hostname];
  if (!address) throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
  return [{ address, family: address.includes(":") ? 6 : 4 }];
};

/** A handler instance with its own /tmp, i.e. a fresh (cold) Lambda container. */
function coldContainer(extra: Partial<TestHandlerDeps> = {}) {
  const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
  scratch.push(tmpRoot);
  const handle = testHandler({
    config: loadConfig(),
    tmpRoot,
    resolver,
    egress: testEgress(distributor),
    toolEnv: standinEnv,
    logSink: (l) => logs.push(l),
    ...extra,
  });
  return { handle, tmpRoot };
}

function activations(): string[] {
  const file = join(stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean) : [];
}

async function storedDeviceSerial(): Promise<string | undefined> {
  const device = await deviceStore.load();
  return device && /<adept:deviceSerial>([^<]+)</.exec(device["device.xml"].toString())?.[1];
}

async function forgetStoredDevice(): Promise<void> {
  await deviceStore.remove();
}

function body(res: { body: string }): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** The bytes the stand-in server "sells" for a title: `<title>|` repeated to `size` bytes. */
function expectedBook(title: string, size = 65536): Buffer {
  const unit = Buffer.from(`${title}|`);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = unit[i % unit.length];
  return out;
}

function jsonPost(payload: unknown) {
  return urlEvent("POST", JSON.stringify(payload));
}

function workDirs(tmpRoot: string): string[] {
  return readdirSync(tmpRoot).filter((n) => n.startsWith("knock-req-"));
}

beforeAll(async () => {
  s3 = await startLocalS3();
  distributor = await startFakeDistributor();
  stateDir = mkdtempSync(join(tmpdir(), "knock-adept-state-"));
  Object.assign(process.env, handlerEnv(s3, { FAKE_ADEPT_STATE_DIR: stateDir }));
  // The handler's own S3 client factory and device store, pointed at the local server by the env.
  deviceStore = deviceStoreOn(s3Objects(createS3Client(loadConfig()), DEVICE_BUCKET));
});

afterAll(async () => {
  await s3.close();
  await distributor.close();
  for (const dir of [stateDir, ...scratch]) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

afterEach(() => {
  delete process.env.FAKE_ADEPT_HANG;
  delete process.env.FAKE_ADEPT_BOOK_BYTES;
});

describe("request forms", () => {
  it("converts an ACSM posted as JSON acsm_content and links the DRM-free book", async () => {
    const { handle } = coldContainer();
    const ctx = fakeContext();
    const sent = Date.now();
    const res = await handle(jsonPost({ acsm_content: makeAcsm({ title: "Plain Title" }), filename: "shop-order.acsm" }), ctx);
    const answered = Date.now();
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    const out = body(res);
    expect(out.files_count).toBe(1);
    expect(out.source_acsm_filename).toBe("shop-order.acsm");
    const [file] = out.output_files as Record<string, unknown>[];
    expect(file.filename).toBe("Plain Title.epub");
    expect(file.s3_key).toBe(`converted/${ctx.awsRequestId}/Plain Title.epub`);
    expect(file.content_type).toBe("application/epub+zip");
    expect(file.size_bytes).toBe(65536);
    const expires = Date.parse(file.expires_at as string);
    // The link lives the configured 900 s from the moment it was signed, somewhere between send and answer
    // (expires_at is whole seconds or finer, hence the 1 s allowance below).
    expect(expires).toBeGreaterThanOrEqual(sent + 900_000 - 1000);
    expect(expires).toBeLessThanOrEqual(answered + 900_000);
  });

  it("matches keys loosely and case-insensitively like the original (e.g. My_ACSM_Content)", async () => {
    const { handle } = coldContainer();
    const res = await handle(jsonPost({ My_ACSM_Content: makeAcsm({ title: "Loose Keys" }) }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect((body(res).output_files as { filename: string }[])[0].filename).toBe("Loose Keys.epub");
  });

  it("converts a raw ACSM body, plain and base64-encoded by the Function URL", async () => {
    const { handle } = coldContainer();
    const plain = await handle(urlEvent("POST", makeAcsm({ title: "Raw" }), { contentType: "application/vnd.adobe.adept+xml" }), fakeContext());
    expect(plain.statusCode).toBe(200);
    expect(body(plain).source_acsm_filename).toBe("upload.acsm");
    const b64 = await handle(urlEvent("POST", makeAcsm({ title: "Base64" }), { base64: true }), fakeContext());
    expect(b64.statusCode).toBe(200);
    expect((body(b64).output_files as { filename: string }[])[0].filename).toBe("Base64.epub");
  });

  it("converts the sample ACSM file posted as-is (curl --data-binary @book.acsm), keeping the UTF-8 title", async () => {
    const { handle } = coldContainer();
    const sample = readFileSync(join(__dirname, "../fixtures/libgourou/sample-book.acsm"), "utf8");
    const res = await handle(urlEvent("POST", sample, { contentType: "application/octet-stream" }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect((body(res).output_files as { filename: string }[])[0].filename).toBe("Les Misérables.epub");
  });

  it("accepts a direct invocation whose event is the JSON request", async () => {
    const { handle } = coldContainer();
    const res = await handle({ acsm_content: makeAcsm({ title: "Direct", format: "application/pdf" }) }, fakeContext());
    expect(res.statusCode).toBe(200);
    const [file] = body(res).output_files as Record<string, unknown>[];
    expect(file.filename).toBe("Direct.pdf");
    expect(file.content_type).toBe("application/pdf");
  });

  it("answers GET with health and the converter's version", async () => {
    const { handle } = coldContainer();
    const res = await handle(urlEvent("GET"), fakeContext());
    expect(res.statusCode).toBe(200);
    // The tools' own -V line (utils/utils_common.cpp, version()), as the image's tools print it.
    expect(body(res)).toMatchObject({ status: "ok", converter: { acsmdownloader: "Current libgourou version : 0.8.9" } });
  });

  it("answers 405 for methods other than GET and POST, with an Allow header naming those two (RFC 9110 §15.5.6)", async () => {
    const { handle } = coldContainer();
    for (const method of ["PUT", "DELETE", "PATCH", "HEAD"]) {
      const res = await handle(urlEvent(method, "{}"), fakeContext());
      expect(res.statusCode).toBe(405);
      expect(body(res).error_type).toBe("MethodNotAllowed");
      expect(res.headers.allow).toBe("GET, POST");
    }
    // Only a 405 carries it.
    expect((await handle(urlEvent("GET"), fakeContext())).headers.allow).toBeUndefined();
  });

  it("works as a Lambda entry point, configured from the environment", async () => {
    // Its /tmp is os.tmpdir(), fixed at the first invocation: point it at a scratch directory.
    const tmp = mkdtempSync(join(tmpdir(), "knock-container-"));
    scratch.push(tmp);
    process.env.TMPDIR = tmp;
    // The module's `handler` is this with no seams; here the converter's connections go to the fake
    // distributor, as in coldContainer (no real DNS).
    const lambdaHandler = entryPoint((config) => createHandler({ config }, { egress: testEgress(distributor), toolEnv: standinEnv }));
    const ctx = fakeContext() as never;
    const health = await lambdaHandler(urlEvent("GET"), ctx);
    expect(health.statusCode).toBe(200);
    const res = await lambdaHandler(jsonPost({ acsm_content: makeAcsm({ title: "Entry Point" }) }), fakeContext() as never);
    delete process.env.TMPDIR;
    expect(res.statusCode).toBe(200);
    expect(readdirSync(tmp)).toEqual(["knock-devices"]);
  });
});

describe("acsm_url", () => {
  let server: Server;
  let port: number;
  let cert: string;
  const served = new Map<string, { status: number; body?: string; location?: string }>();

  beforeAll(async () => {
    const tls = selfSignedCert(Object.keys(hosts));
    cert = tls.cert;
    server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      const entry = served.get(req.url ?? "") ?? { status: 404 };
      res.writeHead(entry.status, entry.location ? { location: entry.location.replace("PORT", String(port)) } : {});
      res.end(entry.body ?? "");
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  // Only books.example.test may reach the loopback test server; every other rule is the default policy.
  const allowTestServer = (address: string) => address === "127.0.0.1" || isPublicAddress(address);

  it("fetches the ACSM from an https URL and converts it", async () => {
    served.set("/order/loan.acsm", { status: 200, body: makeAcsm({ title: "From URL" }) });
    const { handle } = coldContainer({ isAllowedAddress: allowTestServer, ca: cert });
    const res = await handle(jsonPost({ acsm_url: `https://books.example.test:${port}/order/loan.acsm` }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res).source_acsm_filename).toBe("loan.acsm");
    expect((body(res).output_files as { filename: string }[])[0].filename).toBe("From URL.epub");
  });

  it.each([
    ["file:///etc/passwd", /https/],
    ["http://books.example.test/loan.acsm", /https/],
    ["https://loopback.example.test/loan.acsm", /private or reserved address \(127\.0\.0\.1\)/],
    ["https://private.example.test/loan.acsm", /private or reserved address \(10\.0\.0\.7\)/],
    ["https://metadata.example.test/latest/meta-data/", /private or reserved address \(169\.254\.169\.254\)/],
    ["https://mapped.example.test/loan.acsm", /private or reserved address \(::ffff:127\.0\.0\.1\)/],
    ["https://cgnat.example.test/loan.acsm", /private or reserved address \(100\.64\.1\.2\)/],
    ["https://ula.example.test/loan.acsm", /private or reserved address \(fd00::1\)/],
    ["https://127.0.0.1/loan.acsm", /private or reserved address \(127\.0\.0\.1\)/],
    ["https://[::1]/loan.acsm", /private or reserved address \(::1\)/],
    ["https://nowhere.example.test/loan.acsm", /does not resolve/],
  ])("refuses %s with 400", async (url, reason) => {
    const { handle } = coldContainer();
    const res = await handle(jsonPost({ acsm_url: url }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error_type).toBe("InvalidAcsmUrl");
    expect(body(res).error).toMatch(reason);
  });

  it("checks every redirect hop: a redirect to a private address is refused", async () => {
    served.set("/redirect", { status: 302, location: "https://private.example.test:PORT/loan.acsm" });
    const { handle } = coldContainer({ isAllowedAddress: allowTestServer, ca: cert });
    const res = await handle(jsonPost({ acsm_url: `https://books.example.test:${port}/redirect` }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/private or reserved address \(10\.0\.0\.7\)/);
  });

  it("follows a bounded number of redirects", async () => {
    served.set("/loop", { status: 302, location: "/loop" });
    const { handle } = coldContainer({ isAllowedAddress: allowTestServer, ca: cert });
    const res = await handle(jsonPost({ acsm_url: `https://books.example.test:${port}/loop` }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/redirected more than 3 times/);
  });

  it("refuses a response larger than the ACSM size limit", async () => {
    served.set("/huge", { status: 200, body: "<".repeat(300 * 1024) });
    const { handle } = coldContainer({ isAllowedAddress: allowTestServer, ca: cert });
    const res = await handle(jsonPost({ acsm_url: `https://books.example.test:${port}/huge` }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/262144 bytes/);
  });
});

describe("bad input", () => {
  it.each([
    ["a body that is neither JSON nor XML", "hello there", /neither JSON nor an ACSM/],
    ["JSON without an ACSM key", JSON.stringify({ book: "x" }), /no ACSM.*got keys: book/],
    ["XML that is not an ADEPT fulfillment token", "<html><body>hi</body></html>", /not an ACSM file/],
    ["JSON acsm_content that is not a token", JSON.stringify({ acsm_content: "<fulfillmentToken/>" }), /not an ACSM file/],
  ])("answers 400 for %s", async (_name, payload, message) => {
    const { handle } = coldContainer();
    const res = await handle(urlEvent("POST", payload), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(message);
    expect(body(res).request_id).toBeTruthy();
  });

  it("answers 413 for a body over 256 KiB, plain or base64", async () => {
    const { handle } = coldContainer();
    const big = makeAcsm().replace("<hmac>", `<!-- ${"x".repeat(256 * 1024)} --><hmac>`);
    for (const base64 of [false, true]) {
      const res = await handle(urlEvent("POST", big, { base64 }), fakeContext());
      expect(res.statusCode).toBe(413);
      expect(body(res).limit_bytes).toBe(262144);
    }
  });

  it("answers 410 naming the date when the token's <expiration> is past", async () => {
    const { handle } = coldContainer();
    const res = await handle(jsonPost({ acsm_content: makeAcsm({ expiration: "2024-01-02T03:04:05+00:00" }) }), fakeContext());
    expect(res.statusCode).toBe(410);
    expect(body(res).error).toContain("2024-01-02T03:04:05+00:00");
    expect(body(res).expired_at).toBe("2024-01-02T03:04:05+00:00");
  });

  it("answers 400 before any tool runs when the token has no HMAC (libgourou's 0x1102)", async () => {
    const { handle } = coldContainer();
    const res = await handle(jsonPost({ acsm_content: makeAcsm({ hmac: false }) }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/no <hmac>/);
  });
});

describe("converter and distributor failures", () => {
  it("answers 409 with a plain explanation for E_GOOGLE_DEVICE_LIMIT_REACHED", async () => {
    const { handle } = coldContainer();
    const acsm = makeAcsm({ operatorURL: "https://acs.example-shop.test/fulfillment?adept_error=E_GOOGLE_DEVICE_LIMIT_REACHED" });
    const res = await handle(jsonPost({ acsm_content: acsm }), fakeContext());
    expect(res.statusCode).toBe(409);
    expect(body(res).error_type).toBe("DeviceLimitReached");
    expect(body(res).error).toMatch(/too many devices/);
  });

  it.each([
    // Through the egress proxy libcurl cannot see the DNS failure (the proxy answers the CONNECT with
    // 502, a receive error to libcurl, lib/http_proxy.c), but the proxy knows the host did not
    // resolve, and the answer names it.
    ["a network failure (0x500b)", "https://acs.unreachable.invalid/fulfillment", /This machine has no route to acs\.unreachable\.invalid: the name does not resolve\./],
    ["an HTTP failure (0x5011)", "https://acs.example-shop.test/fulfillment?http_status=503", /HTTP Error code 503/],
    ["another ADEPT server error (0x1003)", "https://acs.example-shop.test/fulfillment?adept_error=E_ADEPT_DISTRIBUTOR_AUTH", /E_ADEPT_DISTRIBUTOR_AUTH/],
  ])("answers 502 for %s", async (_name, operatorURL, message) => {
    const { handle } = coldContainer();
    const res = await handle(jsonPost({ acsm_content: makeAcsm({ operatorURL }) }), fakeContext());
    expect(res.statusCode).toBe(502);
    expect(body(res).error).toMatch(message);
  });

  it("kills a hanging tool with its whole process group and answers 504", async () => {
    const { safetyMarginMs } = await import("../../lambda/src/handler");
    const { handle } = coldContainer();
    await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext()); // device ready, so the hang is in the download
    process.env.FAKE_ADEPT_HANG = "acsmdownloader";
    const budgetMs = 3000;
    const started = Date.now();
    const res = await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext(budgetMs));
    const elapsedMs = Date.now() - started;
    expect(res.statusCode).toBe(504);
    expect(body(res).error).toMatch(/^acsmdownloader did not finish within \d+ ms/);
    // The tool gets the invocation's time left less the handler's margin, which leaves the time to
    // answer before Lambda's own deadline; and it really gets all of it. (How soon the answer goes
    // out after the kill is the machine's business: a loaded one is late, never early.)
    const limitMs = Number(/within (\d+) ms/.exec(String(body(res).error))?.[1]);
    expect(limitMs).toBeGreaterThan(0);
    expect(limitMs).toBeLessThanOrEqual(budgetMs - safetyMarginMs(budgetMs));
    expect(elapsedMs).toBeGreaterThanOrEqual(limitMs - 5); // a timer may fire a millisecond early by Date.now()
    // The helper the tool started dies with the group (as a zombie until its new parent reaps it).
    const helper = Number(readFileSync(join(stateDir, "acsmdownloader.helper.pid"), "utf8"));
    const alive = (): boolean => {
      try {
        return !/\) Z /.test(readFileSync(`/proc/${helper}/stat`, "utf8"));
      } catch {
        return false; // gone from /proc
      }
    };
    const deadline = Date.now() + 30_000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive()).toBe(false);
  }, 60_000);

  it("answers 500 naming the tool when the converter is missing from the image", async () => {
    const empty = mkdtempSync(join(tmpdir(), "knock-no-tools-"));
    scratch.push(empty);
    const config = { ...loadConfig(), toolsDir: empty };
    const { handle } = coldContainer({ config });
    const res = await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext());
    expect(res.statusCode).toBe(500);
    expect(body(res).error_type).toBe("ConverterMissing");
    const health = await handle(urlEvent("GET"), fakeContext());
    expect(health.statusCode).toBe(500);
  });

  it("answers 500 without internals for an unexpected failure (output bucket missing)", async () => {
    const config = { ...loadConfig(), outputBucket: "no-such-bucket" };
    const { handle } = coldContainer({ config });
    const ctx = fakeContext();
    const res = await handle(jsonPost({ acsm_content: makeAcsm() }), ctx);
    expect(res.statusCode).toBe(500);
    expect(body(res)).toEqual({
      error: "Internal error while converting; see the function's logs for this request_id.",
      error_type: "InternalError",
      request_id: ctx.awsRequestId,
    });
    expect(res.body).not.toMatch(/at .*\.ts:\d+|S3RVER/);
    const logged = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === ctx.awsRequestId);
    expect(logged.some((l) => l.level === "ERROR" && /bucket/i.test(String(l.error)))).toBe(true);
  });
});

describe("device persistence", () => {
  beforeEach(forgetStoredDevice);

  it("activates once, stores the device, and a new cold container reuses it without activating", async () => {
    const before = activations().length;
    const first = coldContainer();
    expect((await first.handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    expect(activations().length).toBe(before + 1);
    const serial = await storedDeviceSerial();
    expect(serial).toBe(activations().at(-1));

    const second = coldContainer(); // fresh /tmp and module state: a cold start elsewhere
    expect((await second.handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    expect(activations().length).toBe(before + 1);
    const cached = readdirSync(join(second.tmpRoot, "knock-devices"));
    expect(cached).toHaveLength(1);
    expect(readFileSync(join(second.tmpRoot, "knock-devices", cached[0], "device.xml"), "utf8")).toContain(serial!);
  });

  it("two concurrent cold starts end up on one stored device", async () => {
    const before = activations().length;
    const a = coldContainer();
    const b = coldContainer();
    const [ra, rb] = await Promise.all([
      a.handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext()),
      b.handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext()),
    ]);
    expect([ra.statusCode, rb.statusCode]).toEqual([200, 200]);
    expect(activations().length).toBe(before + 2); // both activated before either stored
    const stored = await storedDeviceSerial();
    expect(activations().slice(-2)).toContain(stored);
    // Both containers now hold the stored device, and neither activates again.
    for (const c of [a, b]) {
      expect((await c.handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
      const dirs = readdirSync(join(c.tmpRoot, "knock-devices"));
      const serials = dirs.flatMap((d) => {
        const f = [join(c.tmpRoot, "knock-devices", d, "device.xml"), join(c.tmpRoot, "knock-devices", d, "device", "device.xml")].find(existsSync);
        return f ? [/<adept:deviceSerial>([^<]+)</.exec(readFileSync(f, "utf8"))![1]] : [];
      });
      expect(serials).toEqual([stored]);
    }
    expect(activations().length).toBe(before + 2);
  });

  it("on E_ADEPT_REQUEST_EXPIRED resets the device, re-activates and retries once", async () => {
    const { handle } = coldContainer();
    expect((await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    const oldSerial = await storedDeviceSerial();
    const before = activations().length;
    const once = makeAcsm({ operatorURL: "https://acs.example-shop.test/f?adept_error=E_ADEPT_REQUEST_EXPIRED&times=1" });
    const res = await handle(jsonPost({ acsm_content: once }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(activations().length).toBe(before + 1);
    const newSerial = await storedDeviceSerial();
    expect(newSerial).toBe(activations().at(-1));
    expect(newSerial).not.toBe(oldSerial);
  });

  it("answers 502 when the retry with a fresh device is refused again", async () => {
    const { handle } = coldContainer();
    const before = activations().length;
    const always = makeAcsm({ operatorURL: "https://acs.example-shop.test/f?adept_error=E_ADEPT_REQUEST_EXPIRED" });
    const res = await handle(jsonPost({ acsm_content: always }), fakeContext());
    expect(res.statusCode).toBe(502);
    expect(body(res).error).toMatch(/E_ADEPT_REQUEST_EXPIRED/);
    expect(activations().length).toBe(before + 2); // the first device, then exactly one re-activation
  });

  it("keeps nothing from a failed activation, and the next request activates cleanly", async () => {
    const { handle, tmpRoot } = coldContainer();
    const before = activations().length;
    // libgourou writes devicesalt and device.xml before its first request, so a failed
    // activation leaves a half-written folder behind (the stand-in does the same).
    process.env.FAKE_ADEPT_OFFLINE = "1";
    try {
      const failed = await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext());
      expect(failed.statusCode).toBe(502);
      expect(body(failed).error).toMatch(/resolve host name/);
    } finally {
      delete process.env.FAKE_ADEPT_OFFLINE;
    }
    expect(await deviceStore.load()).toBeUndefined();
    expect(readdirSync(join(tmpRoot, "knock-devices"))).toEqual([]);
    expect(activations().length).toBe(before);

    const res = await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(activations().length).toBe(before + 1);
    expect(await storedDeviceSerial()).toBe(activations().at(-1));
  });
});

describe("work directories and downloads", () => {
  it("removes the per-invocation temp directory after success and after failure", async () => {
    const { handle, tmpRoot } = coldContainer();
    expect((await handle(jsonPost({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    expect(workDirs(tmpRoot)).toEqual([]);
    const failing = makeAcsm({ operatorURL: "https://acs.example-shop.test/f?http_status=500" });
    expect((await handle(jsonPost({ acsm_content: failing }), fakeContext())).statusCode).toBe(502);
    expect(workDirs(tmpRoot)).toEqual([]);
    // The device cache is the one thing kept for warm invocations.
    expect(readdirSync(tmpRoot)).toEqual(["knock-devices"]);
  });

  it("gives each request its own key, and the presigned URL downloads the book as an attachment with its UTF-8 name", async () => {
    const title = 'Élan – "Ünïcode" Tales';
    const { handle } = coldContainer();
    const ra = await handle(jsonPost({ acsm_content: makeAcsm({ title }) }), fakeContext());
    const rb = await handle(jsonPost({ acsm_content: makeAcsm({ title }) }), fakeContext());
    const fa = (body(ra).output_files as Record<string, string>[])[0];
    const fb = (body(rb).output_files as Record<string, string>[])[0];
    expect(fa.s3_key).not.toBe(fb.s3_key);
    expect(fa.download_url.startsWith(s3.endpoint)).toBe(true);

    const download = await fetch(fa.download_url);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(expectedBook(title))).toBe(true);
    expect(download.headers.get("content-type")).toBe("application/epub+zip");
    // ASCII fallback with non-ASCII and quotes replaced, plus the exact name in RFC 5987 form.
    expect(download.headers.get("content-disposition")).toBe(
      `attachment; filename="_lan _ __n_code_ Tales.epub"; filename*=UTF-8''${encodeURIComponent(`${title}.epub`)}`,
    );
    expect(fa.s3_key.startsWith("converted/")).toBe(true);
    expect(OUTPUT_BUCKET).toBe(loadConfig().outputBucket);
  });

  it("logs one JSON object per line carrying the request id", async () => {
    const { handle } = coldContainer();
    const ctx = fakeContext();
    logs.length = 0;
    await handle(jsonPost({ acsm_content: makeAcsm() }), ctx);
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(JSON.parse(line)).toMatchObject({ request_id: ctx.awsRequestId });
  });
});

