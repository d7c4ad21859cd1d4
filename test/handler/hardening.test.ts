// Hostile input end to end (issue 7): the converter cannot be pointed at internal addresses, runs
// without the function's credentials, concurrent device replacements agree on one device, long
// titles convert, odd events are 400, expires_at is honest and errors hide internal paths.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../../lambda/src/handler";
import { testHandler, type TestHandlerDeps } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import {
  TOOLS_DIR,
  fakeContext,
  handlerEnv,
  makeAcsm,
  standinEnv,
  startFakeDistributor,
  startLocalS3,
  testEgress,
  urlEvent,
  type FakeDistributor,
  type LocalS3,
} from "./harness";

let s3: LocalS3;
let distributor: FakeDistributor;
let canary: Server;
let canaryPort: number;
const canaryHits: string[] = [];
let stateDir: string;
const scratch: string[] = [];
const savedEnv = { ...process.env };

function container(extra: Partial<TestHandlerDeps> = {}) {
  const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
  scratch.push(tmpRoot);
  const logs: string[] = [];
  const handle = testHandler({ config: loadConfig(), tmpRoot, egress: testEgress(distributor), toolEnv: standinEnv, logSink: (l) => logs.push(l), ...extra });
  return { handle, tmpRoot, logs };
}
const post = (payload: unknown) => urlEvent("POST", JSON.stringify(payload));
const parse = (res: { body: string }) => JSON.parse(res.body) as Record<string, unknown>;
const activations = (): string[] => {
  const file = join(stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean) : [];
};

beforeAll(async () => {
  s3 = await startLocalS3();
  distributor = await startFakeDistributor();
  stateDir = mkdtempSync(join(tmpdir(), "knock-adept-state-"));
  Object.assign(process.env, handlerEnv(s3, { FAKE_ADEPT_STATE_DIR: stateDir, FAKE_ADEPT_NO_RETRY_PAUSE: "1" }));
  // Stands for anything internal (instance metadata, a VPC service): it must never be reached.
  canary = createServer((req, res) => {
    canaryHits.push(`${req.method} ${req.url}`);
    res.end("secret");
  });
  canary.on("connection", () => canaryHits.push("connection"));
  await new Promise<void>((done) => canary.listen(0, "127.0.0.1", done));
  canaryPort = (canary.address() as AddressInfo).port;
});

afterAll(async () => {
  await s3.close();
  await distributor.close();
  canary.closeAllConnections();
  await new Promise<void>((done) => canary.close(() => done()));
  for (const dir of [stateDir, ...scratch]) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

describe("the converter's connections go through the egress policy", () => {
  it.each([
    ["an http loopback operatorURL", () => `http://127.0.0.1:${canaryPort}/fulfillment`],
    ["an https loopback operatorURL (CONNECT)", () => `https://127.0.0.1:${canaryPort}/fulfillment`],
    ["an IPv4-mapped loopback operatorURL", () => `http://[::ffff:127.0.0.1]:${canaryPort}/fulfillment`],
  ])("refuses %s with 400 and the canary receives nothing", async (_name, operatorURL) => {
    const { handle, logs } = container();
    const res = await handle(post({ acsm_content: makeAcsm({ operatorURL: operatorURL() }) }), fakeContext());
    expect(parse(res)).toMatchObject({ error_type: "ForbiddenDestination" });
    expect(res.statusCode).toBe(400);
    expect(canaryHits).toEqual([]);
    expect(logs.some((l) => /"egress refused"/.test(l))).toBe(true);
  });

  it("while a public-looking distributor host the test explicitly allows still works, through the proxy", async () => {
    const before = distributor.hits.length;
    const { handle, logs } = container();
    const res = await handle(post({ acsm_content: makeAcsm({ operatorURL: "http://acs.example-shop.test/fulfillment" }) }), fakeContext());
    expect(res.statusCode).toBe(200);
    // The activation (Adobe's server) and the fulfilment both reached the fake distributor.
    expect(distributor.hits.slice(before)).toContain("POST /fulfillment/Auth");
    expect(logs.some((l) => /"egress".*acs\.example-shop\.test/.test(l))).toBe(true);
    expect(canaryHits).toEqual([]);
  });

  it("refuses a non-http(s) operatorURL with 400 before any tool runs", async () => {
    const { handle } = container();
    const before = activations().length;
    const res = await handle(post({ acsm_content: makeAcsm({ operatorURL: `file:///etc/passwd` }) }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(parse(res).error).toMatch(/operatorURL.*http/);
    expect(activations().length).toBe(before);
  });
});

/** A tools folder whose acsmdownloader is `script` (a shell script); the other tools are the stand-ins. */
function toolsWith(script: string): string {
  const dir = mkdtempSync(join(tmpdir(), "knock-tools-"));
  scratch.push(dir);
  for (const t of ["adept_activate", "adept_remove"]) symlinkSync(join(TOOLS_DIR, t), join(dir, t));
  writeFileSync(join(dir, "acsmdownloader"), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, "acsmdownloader"), 0o755);
  return dir;
}

describe("the tools' environment", () => {
  it("holds no AWS credentials or other variables of the function, only what the conversion needs", async () => {
    process.env.AWS_SESSION_TOKEN = "session-token-canary";
    process.env.SOME_SECRET = "another-canary";
    try {
      const dump = join(stateDir, "env.txt");
      const tools = toolsWith(`env > '${dump}'\nexec '${join(TOOLS_DIR, "acsmdownloader")}' "$@"`);
      const { handle } = container({ config: { ...loadConfig(), toolsDir: tools } });
      const res = await handle(post({ acsm_content: makeAcsm() }), fakeContext());
      expect(res.statusCode).toBe(200);
      const env = readFileSync(dump, "utf8");
      expect(env).not.toMatch(/AWS_|SOME_SECRET|canary/);
      expect(env).not.toMatch(/^no_proxy=|^NO_PROXY=/m);
      expect(env).toMatch(/^https_proxy=http:\/\/127\.0\.0\.1:\d+$/m);
      expect(env).toMatch(/^http_proxy=http:\/\/127\.0\.0\.1:\d+$/m);
      expect(env).toMatch(/^PATH=/m);
    } finally {
      delete process.env.AWS_SESSION_TOKEN;
      delete process.env.SOME_SECRET;
    }
  });
});

describe("error answers", () => {
  it("do not expose the function's internal paths when a tool names its files", async () => {
    // A tool failure that quotes its arguments, as libgourou does (0x1101 "Invalid ACSM file <path>",
    // "Error : <dir>/devicesalt doesn't exists").
    const tools = toolsWith(`for last; do :; done\necho "Exception code : 0x1101"\necho "Message        : Invalid ACSM file $last (device $2)"\nexit 1`);
    const { handle, tmpRoot } = container({ config: { ...loadConfig(), toolsDir: tools } });
    const res = await handle(post({ acsm_content: makeAcsm() }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(parse(res).error).toMatch(/Invalid ACSM file <path>/);
    expect(res.body).not.toContain(tmpRoot);
    expect(res.body).not.toMatch(/\/tmp\/|knock-req-|knock-devices/);
  });
});

describe("events and names", () => {
  it.each([
    ["an object", { acsm_content: "x" }],
    ["a number", 42],
    ["an array", ["<x/>"]],
    ["a boolean", true],
  ])("answers 400 for a Function URL event whose body is %s", async (_name, value) => {
    const { handle } = container();
    const event = { ...(urlEvent("POST") as Record<string, unknown>), body: value };
    const res = await handle(event, fakeContext());
    expect(res.statusCode).toBe(400);
    expect(parse(res).error_type).toBe("BadRequest");
  });

  it("converts a book whose title is longer than a file name may be, under a shortened UTF-8-safe name", async () => {
    const title = "Ünïcödé 📚 ".repeat(30); // ~ 480 bytes, multi-byte characters throughout
    const { handle } = container();
    const res = await handle(post({ acsm_content: makeAcsm({ title, format: "application/pdf" }) }), fakeContext());
    expect(res.statusCode).toBe(200);
    const [file] = parse(res).output_files as { filename: string; content_type: string }[];
    expect(Buffer.byteLength(file.filename)).toBeLessThanOrEqual(255);
    expect(file.filename.endsWith(".pdf")).toBe(true);
    expect(file.content_type).toBe("application/pdf");
    expect(file.filename).not.toContain("\uFFFD");
    expect(title.startsWith(file.filename.slice(0, -4).trimEnd())).toBe(true);
  });

  it("reports expires_at as the earlier of the URL's expiry and the signing credentials' expiration", async () => {
    const credentialsExpire = new Date(Date.now() + 10 * 60_000); // before the 900 s URL expiry
    // Temporary credentials, as a Lambda role's are (same keys as the local S3's, with an expiration).
    const client = createS3Client(loadConfig());
    client.config.credentials = async () => ({ accessKeyId: "S3RVER", secretAccessKey: "S3RVER", expiration: credentialsExpire });
    const { handle } = container({ s3: client });
    const res = await handle(post({ acsm_content: makeAcsm() }), fakeContext());
    expect(res.statusCode).toBe(200);
    const [file] = parse(res).output_files as { expires_at: string }[];
    expect(file.expires_at).toBe(credentialsExpire.toISOString());
  });
});

describe("device replacement across warm containers", () => {
  it("two containers hitting E_ADEPT_REQUEST_EXPIRED at once activate exactly one new device, and both convert", async () => {
    const a = container();
    const b = container();
    // Both warm, holding the same stored device.
    expect((await a.handle(post({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    expect((await b.handle(post({ acsm_content: makeAcsm() }), fakeContext())).statusCode).toBe(200);
    const before = activations().length;
    // Each token is refused once (counted per token by the stand-in), then fulfils.
    const expiredOnce = () => makeAcsm({ operatorURL: "https://acs.example-shop.test/f?adept_error=E_ADEPT_REQUEST_EXPIRED&times=1" });
    const [ra, rb] = await Promise.all([
      a.handle(post({ acsm_content: expiredOnce() }), fakeContext()),
      b.handle(post({ acsm_content: expiredOnce() }), fakeContext()),
    ]);
    expect([ra.statusCode, rb.statusCode]).toEqual([200, 200]);
    expect(activations().length).toBe(before + 1);
  });
});
