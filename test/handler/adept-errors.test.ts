// Every distributor/Adobe failure in lambda/src/adept-errors.ts, end to end through the real handler
// with the libgourou stand-in: its status, error_type and message, and how often acsmdownloader ran
// (permanent failures once, transient ones retried with backoff bounded by the invocation's time).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { testHandler } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import { ADEPT_SERVER_ERRORS, DISTRIBUTOR_HTTP_ERRORS } from "../../lambda/src/adept-errors";
import type { Resolver } from "../../lambda/src/fetch-acsm";
import { fakeContext, handlerEnv, makeAcsm, standinEnv, startFakeDistributor, startLocalS3, testEgress, urlEvent, type FakeDistributor, type LocalS3 } from "./harness";

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
  it.each([[404, DISTRIBUTOR_HTTP_ERRORS.notFound]])("answers HTTP %i as a permanent refusal after exactly one attempt", async (httpStatus, row) => {
    const { status, body } = await convert(`${SHOP}?http_status=${httpStatus}`);
    expect(status).toBe(row.statusCode);
    expect(body.error_type).toBe(row.errorType);
    expect(body.error).toBe(row.message);
    expect(body.error).not.toMatch(/try again/i);
    expect(body.distributor_status).toBe(httpStatus);
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("answers HTTP 403 with the generic 502 after exactly one attempt (the egress proxy's refusal looks the same)", async () => {
    const { status, body } = await convert(`${SHOP}?http_status=403`);
    expect(status).toBe(502);
    expect(body.error_type).toBe("UpstreamError");
    expect(body.error).toBe("Could not talk to the distributor's server: HTTP Error code 403.");
    expect(downloaderRuns()).toBe(1);
    expect(sleeps).toEqual([]);
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
