// Every distributor/Adobe failure in lambda/src/adept-errors.ts, end to end through the real handler
// with the libgourou stand-in: its status, error_type and message, and how often acsmdownloader ran
// (permanent failures once, transient ones retried with backoff bounded by the invocation's time).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { testHandler } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import { ADEPT_SERVER_ERRORS, DISTRIBUTOR_HTTP_ERRORS } from "../../lambda/src/adept-errors";
import type { Resolver } from "../../lambda/src/fetch-acsm";
import { TOOLS_DIR, fakeContext, handlerEnv, makeAcsm, standinEnv, startFakeDistributor, startLocalS3, testEgress, urlEvent, type FakeDistributor, type LocalS3 } from "./harness";

let s3: LocalS3;
let distributor: FakeDistributor;
let stateDir: string;
let timingFile: string;
const savedEnv = { ...process.env };
/** The pauses the retry asked for (the fake sleep returns at once). */
let sleeps: number[] = [];
const scratch: string[] = [];

const resolver: Resolver = async (hostname) => {
  throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
};

function handler() {
  const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
  scratch.push(tmpRoot);
  return testHandler({
    config: loadConfig(), tmpRoot, resolver, egress: testEgress(distributor), toolEnv: standinEnv, logSink: () => {},
    // The pauses the retry asks for are recorded and return at once.
    retrySleep: async (ms) => {
      sleeps.push(ms);
    },
  });
}

/** Runs of acsmdownloader since the test started (the stand-in logs each run to FAKE_ADEPT_TIMING_FILE). */
function downloaderRuns(): number {
  if (!existsSync(timingFile)) return 0;
  return readFileSync(timingFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .filter((line) => (JSON.parse(line) as { tool: string }).tool === "acsmdownloader").length;
}

async function convert(operatorURL: string, budgetMs?: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const handle = handler();
  // A first request activates the device, so that only the fulfilment is counted below.
  const res = await handle(urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm({ operatorURL }) })), fakeContext(budgetMs));
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
}

beforeAll(async () => {
  s3 = await startLocalS3();
  distributor = await startFakeDistributor();
  stateDir = mkdtempSync(join(tmpdir(), "knock-adept-state-"));
  Object.assign(process.env, handlerEnv(s3, { FAKE_ADEPT_STATE_DIR: stateDir }));
});

afterAll(async () => {
  await s3.close();
  await distributor.close();
  for (const dir of [stateDir, ...scratch]) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

beforeEach(() => {
  sleeps = [];
  timingFile = join(stateDir, `timing-${Math.random().toString(36).slice(2)}.jsonl`);
  writeFileSync(timingFile, "");
  process.env.FAKE_ADEPT_TIMING_FILE = timingFile;
});

afterEach(() => {
  delete process.env.FAKE_ADEPT_TIMING_FILE;
});

const SHOP = "https://acs.example-shop.test/fulfillment";

describe("ADEPT server errors (0x1003)", () => {
  const rows = Object.entries(ADEPT_SERVER_ERRORS).filter(([code]) => code !== "E_GOOGLE_DEVICE_LIMIT_REACHED" && code !== "E_ADEPT_REQUEST_EXPIRED");

  it.each(rows)("answers %s with its own status, error_type and message, after exactly one attempt", async (code, row) => {
    const { status, body } = await convert(`${SHOP}?adept_error=${code}`);
    expect(status).toBe(row.statusCode);
    expect(body.error_type).toBe(row.errorType);
    expect(body.error).toBe(row.message);
    expect(body.error).toContain(code);
    expect(body.adept_error).toBe(code);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("reads the code at the start of the server's data, as real servers send it (code, then a URL)", async () => {
    const data = encodeURIComponent("E_LIC_ALREADY_FULFILLED_BY_ANOTHER_USER https://acs.example-shop.test/fulfillment");
    const { status, body } = await convert(`${SHOP}?adept_error=${data}`);
    expect(status).toBe(409);
    expect(body.error_type).toBe("AlreadyFulfilledByAnotherUser");
    expect(body.error).toMatch(/Open the ACSM with the app or tool that first opened it, or ask the shop or library for a new ACSM\./);
  });

  it("never says 'try again later' for a permanent refusal, and answers it with a 4xx", async () => {
    for (const [, row] of Object.entries(ADEPT_SERVER_ERRORS).filter(([, r]) => r.statusCode < 500)) {
      expect(row.persistence).toBe("permanent");
      expect(row.message).not.toMatch(/try again later/i);
    }
  });

  it("answers E_GOOGLE_DEVICE_LIMIT_REACHED with DeviceLimitReached (409), after one attempt", async () => {
    const { status, body } = await convert(`${SHOP}?adept_error=E_GOOGLE_DEVICE_LIMIT_REACHED`);
    expect(status).toBe(409);
    expect(body.error_type).toBe("DeviceLimitReached");
    expect(body.error).toMatch(/retrying will not help/);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("answers E_ADEPT_REQUEST_EXPIRED after the one re-activation retry with its own message, without backoff", async () => {
    const { status, body } = await convert(`${SHOP}?adept_error=E_ADEPT_REQUEST_EXPIRED`);
    expect(status).toBe(502);
    expect(body.error_type).toBe("UpstreamError");
    expect(body.error).toBe(ADEPT_SERVER_ERRORS.E_ADEPT_REQUEST_EXPIRED.message);
    expect(downloaderRuns()).toBe(2); // the stored device, then one new device
    expect(sleeps).toEqual([]);
  });

  it("keeps an unknown server code a generic 502 UpstreamError", async () => {
    const { status, body } = await convert(`${SHOP}?adept_error=E_SOMETHING_NEW`);
    expect(status).toBe(502);
    expect(body.error_type).toBe("UpstreamError");
    expect(body.error).toMatch(/E_SOMETHING_NEW/);
    expect(downloaderRuns()).toBe(1);
  });
});

describe("distributor HTTP statuses (0x5011)", () => {
  it.each([
    [403, DISTRIBUTOR_HTTP_ERRORS.forbidden],
    [404, DISTRIBUTOR_HTTP_ERRORS.notFound],
  ])("answers HTTP %i as a permanent refusal after exactly one attempt", async (httpStatus, row) => {
    const { status, body } = await convert(`${SHOP}?http_status=${httpStatus}`);
    expect(status).toBe(row.statusCode);
    expect(body.error_type).toBe(row.errorType);
    expect(body.error).toBe(row.message);
    expect(body.error).not.toMatch(/try again/i);
    expect(body.distributor_status).toBe(httpStatus);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("never says 'try again' for a distributor's 403, and answers it DistributorRefused (403)", () => {
    const row = DISTRIBUTOR_HTTP_ERRORS.forbidden;
    expect(row).toMatchObject({ statusCode: 403, errorType: "DistributorRefused", persistence: "permanent" });
    expect(row.message).toMatch(/HTTP 403 Forbidden/);
    expect(row.message).toMatch(/new ACSM from the shop or library/);
    expect(row.message).not.toMatch(/try again/i);
  });

  it("converts after one retry when the distributor first answers 429", async () => {
    const { status, body } = await convert(`${SHOP}?http_status=429&times=1`);
    expect(status).toBe(200);
    expect(body.files_count).toBe(1);
    expect(downloaderRuns()).toBe(2); // one extra fulfilment
    expect(sleeps).toEqual([1000]);
  });

  it("answers 503 DistributorBusy when every attempt gets 429", async () => {
    const { status, body } = await convert(`${SHOP}?http_status=429`);
    expect(status).toBe(503);
    expect(body.error_type).toBe("DistributorBusy");
    expect(body.error).toBe(DISTRIBUTOR_HTTP_ERRORS.tooManyRequests.message);
    expect(body.attempts).toBe(3);
    expect(downloaderRuns()).toBe(3);
    expect(sleeps).toEqual([1000, 2000]);
  });

  it("answers 502 UpstreamError after the bounded attempts when the distributor fails with 5xx every time", async () => {
    const { status, body } = await convert(`${SHOP}?http_status=503`);
    expect(status).toBe(502);
    expect(body.error_type).toBe("UpstreamError");
    expect(body.error).toBe("Could not talk to the distributor's server: HTTP Error code 503.");
    expect(body).toMatchObject({ distributor_status: 503, attempts: 3 });
    expect(downloaderRuns()).toBe(3);
    expect(sleeps).toEqual([1000, 2000]);
  });

  it("converts after two retries when 500 comes twice", async () => {
    const { status } = await convert(`${SHOP}?http_status=500&times=2`);
    expect(status).toBe(200);
    expect(downloaderRuns()).toBe(3);
    expect(sleeps).toEqual([1000, 2000]);
  });

  it("does not retry when the invocation's remaining time does not allow the pause and another run", async () => {
    const { status, body } = await convert(`${SHOP}?http_status=503`, 10_500);
    expect(status).toBe(502);
    expect(body.error).toBe("Could not talk to the distributor's server: HTTP Error code 503.");
    expect(body.attempts).toBe(1);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });
});

describe("reset connections (0x500b, curl failures libgourou does not retry itself)", () => {
  it.each(["send_error", "got_nothing", "partial_file"])("converts after one retry when the first fulfilment fails with %s", async (curlError) => {
    const { status } = await convert(`${SHOP}?curl_error=${curlError}&times=1`);
    expect(status).toBe(200);
    expect(downloaderRuns()).toBe(2);
    expect(sleeps).toEqual([1000]);
  });

  it("answers 502 UpstreamError after the bounded attempts when the connection is reset every time", async () => {
    const { status, body } = await convert(`${SHOP}?curl_error=send_error`);
    expect(status).toBe(502);
    expect(body.error_type).toBe("UpstreamError");
    expect(body.error).toBe("Could not talk to the distributor's server: Error Failed sending data to the peer.");
    expect(downloaderRuns()).toBe(3);
  });
});

/**
 * A distributor whose server refuses every request with 403 (its host names resolve, for the egress
 * proxy, to the test's allowed address, dialled here). Tunnels (CONNECT, Adobe's activation server)
 * are accepted as connections; `requests` lists the HTTP requests that reached it.
 */
async function startRefusingDistributor(): Promise<{ port: number; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(403, { "content-type": "text/html" }).end("<html><body>Forbidden</body></html>");
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return { port: (server.address() as AddressInfo).port, requests, server };
}

describe("a 403 from the distributor and the egress proxy's own refusal (both print HTTP Error code 403)", () => {
  let refusing: Awaited<ReturnType<typeof startRefusingDistributor>>;
  let printed: string;
  let tools: string;
  /** A host of the library's intranet: it resolves to a private address, which the egress policy refuses. */
  const INTRANET = "intranet.library.test";

  beforeAll(async () => {
    refusing = await startRefusingDistributor();
    // The stand-in tools, with acsmdownloader's output also kept in a file, so a test can show what it printed.
    tools = mkdtempSync(join(tmpdir(), "knock-tools-"));
    scratch.push(tools);
    printed = join(tools, "acsmdownloader.out");
    for (const t of ["adept_activate", "adept_remove", "adept_loan_mgt"]) symlinkSync(join(TOOLS_DIR, t), join(tools, t));
    writeFileSync(
      join(tools, "acsmdownloader"),
      `#!/bin/sh\n'${join(TOOLS_DIR, "acsmdownloader")}' "$@" > '${printed}'\nstatus=$?\ncat '${printed}'\nexit $status\n`,
    );
    chmodSync(join(tools, "acsmdownloader"), 0o755);
  });

  afterAll(async () => {
    refusing.server.closeAllConnections();
    await new Promise<void>((done) => refusing.server.close(() => done()));
  });

  beforeEach(() => {
    refusing.requests.length = 0;
    writeFileSync(printed, "");
  });

  /** One warm function: its requests share the container, its device and its handler. */
  function warmFunction() {
    const base = testEgress(refusing);
    const egress = { ...base, resolver: async (host: string) => (host === INTRANET ? [{ address: "10.0.0.7", family: 4 }] : base.resolver(host)) };
    const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
    scratch.push(tmpRoot);
    const handle = testHandler({
      config: { ...loadConfig(), toolsDir: tools }, tmpRoot, resolver, egress, toolEnv: standinEnv, logSink: () => {},
      retrySleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    return async (operatorURL: string) => {
      const res = await handle(urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm({ operatorURL }) })), fakeContext());
      return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
    };
  }

  it("answers the distributor's own 403, relayed by the proxy, with DistributorRefused after one request", async () => {
    const convertOn = warmFunction();
    const { status, body } = await convertOn("http://acs.refusing-shop.test/fulfillment");
    expect(readFileSync(printed, "utf8")).toMatch(/^Message {8}: HTTP Error code 403$/m);
    expect(status).toBe(403);
    expect(body).toMatchObject({ error_type: "DistributorRefused", error: DISTRIBUTOR_HTTP_ERRORS.forbidden.message, distributor_status: 403 });
    expect(body).not.toHaveProperty("refused_host");
    // The operator is new to the device: its /Auth is the first request, refused, and nothing follows.
    expect(refusing.requests).toEqual(["POST /fulfillment/Auth"]);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("answers the proxy's refusal that made the tool print 403 with ForbiddenDestination naming the host", async () => {
    const convertOn = warmFunction();
    const { status, body } = await convertOn(`http://${INTRANET}/fulfillment`);
    expect(readFileSync(printed, "utf8")).toMatch(/^Message {8}: HTTP Error code 403$/m);
    expect(status).toBe(400);
    expect(body).toMatchObject({ error_type: "ForbiddenDestination", refused_host: INTRANET });
    expect(body.error).toContain(`points to ${INTRANET}, which resolves to a private or reserved address (10.0.0.7)`);
    expect(refusing.requests).toEqual([]);
    expect(downloaderRuns()).toBe(1);
  });

  it("does not carry a refusal over to the next request of the same warm function", async () => {
    const convertOn = warmFunction();
    const refused = await convertOn(`http://${INTRANET}/fulfillment`);
    expect(refused.body).toMatchObject({ error_type: "ForbiddenDestination", refused_host: INTRANET });
    const next = await convertOn("http://acs.refusing-shop.test/fulfillment");
    expect(next.status).toBe(403);
    expect(next.body).toMatchObject({ error_type: "DistributorRefused", distributor_status: 403 });
    expect(refusing.requests).toEqual(["POST /fulfillment/Auth"]);
    expect(downloaderRuns()).toBe(2);
  });
});
