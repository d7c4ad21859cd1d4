// Library loans end to end (issue 12): the real handler, a real S3-protocol server on 127.0.0.1 with
// S3's conditional-request rules (harness.ts), the libgourou stand-ins — acsmdownloader writes a loan
// token for a `fulfillmentType="loan"` token, adept_loan_mgt returns it through the egress proxy.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../../lambda/src/handler";
import { s3Stores } from "../../lambda/src/stores";
import { testHandler, type TestHandlerDeps } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import { loanKey } from "../../lambda/src/contract";
import { loanStore, type LoanStore } from "../../lambda/src/loan-store";
import { deviceStore } from "../../lambda/src/device";
import { s3Objects } from "../../lambda/src/object-store";
import {
  DEVICE_BUCKET,
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
let store: LoanStore;
let client: ReturnType<typeof createS3Client>;
let distributor: FakeDistributor;
let stateDir: string;
const savedEnv = { ...process.env };
const logs: string[] = [];
const scratch: string[] = [];

beforeAll(async () => {
  s3 = await startLocalS3();
  distributor = await startFakeDistributor();
  stateDir = mkdtempSync(join(tmpdir(), "knock-adept-state-"));
  Object.assign(process.env, handlerEnv(s3, { FAKE_ADEPT_STATE_DIR: stateDir, FAKE_ADEPT_NO_RETRY_PAUSE: "1" }));
  client = createS3Client(loadConfig());
  // The handler's own S3 loan store, pointed at the local server: the tests' view of the bucket.
  store = loanStore(s3Objects(client, DEVICE_BUCKET));
});

afterAll(async () => {
  await s3.close();
  await distributor.close();
  for (const dir of [stateDir, ...scratch]) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

afterEach(async () => {
  // Each test starts with no stored loans.
  for (const { id } of await store.list()) {
    const stored = await store.get(id);
    if (stored) await store.removeIfUnchanged(id, stored.etag);
  }
});

/** A handler instance with its own /tmp: a fresh (cold) Lambda container. */
function coldContainer(extra: Partial<TestHandlerDeps> = {}) {
  const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
  scratch.push(tmpRoot);
  const handle = testHandler({ config: loadConfig(), tmpRoot, egress: testEgress(distributor), toolEnv: standinEnv, logSink: (l) => logs.push(l), ...extra });
  return { handle, tmpRoot };
}

/** A loan's fulfillment token: the stand-in's server lends when the root says `fulfillmentType="loan"`. */
function loanAcsm(title: string, expiration = "2099-12-10T10:00:00+00:00", operatorURL?: string): { acsm: string; id: string } {
  const acsm = makeAcsm({ title, expiration, operatorURL }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  // utils/acsmdownloader.cpp: the file name is the first 16 hex digits of SHA-1(loan id).
  const id = createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16);
  return { acsm, id };
}

/** The JSON answer; no message of these routes may lose text to the handler's file-path redaction. */
function body(res: { body: string }): Record<string, unknown> {
  expect(res.body).not.toContain("<path>");
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** A Function URL event for `method path` (rawPath and requestContext.http.path, as Lambda sends both). */
function at(method: string, path: string, payload?: string) {
  const event = urlEvent(method, payload) as { rawPath: string; requestContext: { http: { path: string } } };
  event.rawPath = path;
  event.requestContext.http.path = path;
  return event;
}

/** Keys of the stored loan tokens. */
async function storedKeys(): Promise<string[]> {
  return (await store.list()).map((l) => loanKey(l.id)).sort();
}

async function putToken(id: string, fields: { name?: string; validity?: string; operatorURL?: string; raw?: string }): Promise<void> {
  const xml =
    fields.raw ??
    `<?xml version="1.0"?>\n<loanToken>\n  <id>urn:uuid:${id}</id>\n  <operatorURL>${fields.operatorURL ?? "https://acs.library.test/fulfillment"}</operatorURL>\n` +
      `  <validity>${fields.validity ?? "2099-01-01T00:00:00+00:00"}</validity>\n  <name>${fields.name ?? "Seeded"}</name>\n</loanToken>\n`;
  await store.put(id, xml);
}

async function convert(handle: ReturnType<typeof coldContainer>["handle"], acsm: string) {
  return handle(urlEvent("POST", JSON.stringify({ acsm_content: acsm })), fakeContext());
}

describe("conversions keep the loan token", () => {
  it("stores a loaned book's token under adept/loans/<id>.xml and answers loan", async () => {
    const { handle, tmpRoot } = coldContainer();
    const { acsm, id } = loanAcsm("Borrowed Book", "2099-12-10T10:00:00+00:00");
    const res = await convert(handle, acsm);
    expect(res.statusCode).toBe(200);
    expect(body(res).loan).toEqual({ id, title: "Borrowed Book", expires_at: "2099-12-10T10:00:00.000Z", returnable: true });
    expect(await storedKeys()).toEqual([`adept/loans/${id}.xml`]);
    const xml = (await store.get(id))!.xml;
    expect(xml).toContain("<name>Borrowed Book</name>");
    expect(xml).toMatch(/<operatorURL>https:\/\/acs\.example-shop\.test\/fulfillment<\/operatorURL>/);
    // The token left the shared device cache: later requests never see it there.
    const devices = readdirSync(join(tmpRoot, "knock-devices"));
    for (const d of devices) expect(existsSync(join(tmpRoot, "knock-devices", d, "loans")) ? readdirSync(join(tmpRoot, "knock-devices", d, "loans")) : []).toEqual([]);
  });

  it("stores nothing and answers no loan for a purchase", async () => {
    const { handle } = coldContainer();
    const res = await convert(handle, makeAcsm({ title: "Bought Book" }));
    expect(res.statusCode).toBe(200);
    expect(body(res)).not.toHaveProperty("loan");
    expect(await storedKeys()).toEqual([]);
  });
});

describe("GET /loans", () => {
  it("lists every stored loan after a cold start, newest first", async () => {
    const first = coldContainer();
    const older = loanAcsm("Older Loan");
    const newer = loanAcsm("Newer Loan");
    expect((await convert(first.handle, older.acsm)).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 1100)); // S3's LastModified has one-second resolution
    expect((await convert(first.handle, newer.acsm)).statusCode).toBe(200);

    const res = await coldContainer().handle(at("GET", "/loans"), fakeContext());
    expect(res.statusCode).toBe(200);
    const { loans, count } = body(res) as { loans: Record<string, unknown>[]; count: number };
    expect(count).toBe(2);
    expect(loans.map((l) => l.id)).toEqual([newer.id, older.id]);
    expect(loans[1]).toMatchObject({ id: older.id, title: "Older Loan", expired: false, returnable: true, operator: "acs.example-shop.test" });
    expect(Date.parse(loans[1].stored_at as string)).toBeLessThanOrEqual(Date.parse(loans[0].stored_at as string));
  });

  it("reports a corrupted stored token in the list without failing it", async () => {
    await putToken("00000000000000aa", { name: "Fine" });
    await putToken("00000000000000bb", { raw: "<loanToken><id>x</id><name>cut off" });
    await putToken("00000000000000cc", { raw: '<!DOCTYPE x [<!ENTITY e "boom">]><loanToken><id>&e;</id></loanToken>' });
    const { handle } = coldContainer();
    const res = await handle(at("GET", "/loans"), fakeContext());
    expect(res.statusCode).toBe(200);
    const loans = (body(res) as { loans: Record<string, unknown>[] }).loans;
    const byId = Object.fromEntries(loans.map((l) => [l.id, l]));
    expect(byId["00000000000000aa"]).toMatchObject({ title: "Fine", returnable: true });
    expect(byId["00000000000000bb"]).toMatchObject({ returnable: false, error: expect.stringMatching(/not well-formed/) });
    expect(byId["00000000000000cc"]).toMatchObject({ returnable: false, error: expect.stringMatching(/DOCTYPE/) });
    // Returning it is refused clearly, and it can be forgotten.
    const ret = await handle(at("POST", "/loans/00000000000000bb/return"), fakeContext());
    expect(ret.statusCode).toBe(422);
    expect(body(ret).error_type).toBe("InvalidLoanToken");
    expect((await handle(at("DELETE", "/loans/00000000000000bb"), fakeContext())).statusCode).toBe(200);
  });

  it("marks a loan whose validity has passed as expired, and refuses to return it with 410", async () => {
    await putToken("0123456789abcdef", { name: "Past", validity: "2024-05-01T10:00:00+00:00" });
    const { handle } = coldContainer();
    const [loan] = (body(await handle(at("GET", "/loans"), fakeContext())) as { loans: Record<string, unknown>[] }).loans;
    expect(loan).toMatchObject({ id: "0123456789abcdef", expired: true, returnable: false, expires_at: "2024-05-01T10:00:00.000Z" });
    const ret = await handle(at("POST", "/loans/0123456789abcdef/return"), fakeContext());
    expect(ret.statusCode).toBe(410);
    expect(body(ret)).toMatchObject({ error_type: "LoanExpired", expired_at: "2024-05-01T10:00:00.000Z" });
  });
});

describe("POST /loans/<id>/return", () => {
  it("returns the loan through the egress proxy, forgets it, and a second return gets 404", async () => {
    const { handle } = coldContainer();
    const { acsm, id } = loanAcsm("To Return");
    expect((await convert(handle, acsm)).statusCode).toBe(200);

    const later = coldContainer(); // a cold start: the device and the token come from the store
    const before = logs.length;
    const res = await later.handle(at("POST", `/loans/${id}/return`), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ returned: true, loan: { id, title: "To Return" } });
    // The return request went to the loan's operator through the proxy (libcurl's CONNECT).
    const egress = logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === "egress");
    expect(egress).toEqual([expect.objectContaining({ host: "acs.example-shop.test", port: 443 })]);
    expect(await storedKeys()).toEqual([]);
    expect(readdirSync(later.tmpRoot).filter((n) => n.startsWith("knock-req-"))).toEqual([]);

    const again = await later.handle(at("POST", `/loans/${id}/return`), fakeContext());
    expect(again.statusCode).toBe(404);
    expect(body(again)).toMatchObject({ error_type: "NoSuchLoan", loan_id: id });
  });

  it("answers 409 with the server's message when the library refuses, and keeps the loan", async () => {
    await putToken("1111111111111111", { operatorURL: "https://acs.library.test/fulfillment?adept_error=E_ADEPT_DISTRIBUTOR_AUTH" });
    const { handle } = coldContainer();
    expect((await convert(handle, makeAcsm())).statusCode).toBe(200); // a device exists
    const res = await handle(at("POST", "/loans/1111111111111111/return"), fakeContext());
    expect(res.statusCode).toBe(409);
    expect(body(res)).toMatchObject({ error_type: "LoanReturnRefused", adept_error: "E_ADEPT_DISTRIBUTOR_AUTH" });
    expect(body(res).error).toMatch(/refused to return loan 1111111111111111: E_ADEPT_DISTRIBUTOR_AUTH/);
    // Kept, and the marker was released: forgetting it works at once.
    expect(await storedKeys()).toEqual([loanKey("1111111111111111")]);
    expect((await handle(at("DELETE", "/loans/1111111111111111"), fakeContext())).statusCode).toBe(200);
  });

  it("answers 502 when the library's server fails (HTTP 503)", async () => {
    await putToken("2222222222222222", { operatorURL: "https://acs.library.test/fulfillment?http_status=503" });
    const { handle } = coldContainer();
    expect((await convert(handle, makeAcsm())).statusCode).toBe(200);
    const res = await handle(at("POST", "/loans/2222222222222222/return"), fakeContext());
    expect(res.statusCode).toBe(502);
    expect(body(res).error).toMatch(/HTTP Error code 503/);
  });

  it("answers the library's HTTP 403 as LoanReturnRefused, never as a conversion's DistributorRefused", async () => {
    // adept_loan_mgt prints a 403 as every HTTP status >= 400, "HTTP Error code 403" (0x5011).
    await putToken("4444444444444444", { operatorURL: "https://acs.library.test/fulfillment?http_status=403" });
    const { handle } = coldContainer();
    expect((await convert(handle, makeAcsm())).statusCode).toBe(200);
    const res = await handle(at("POST", "/loans/4444444444444444/return"), fakeContext());
    expect(res.statusCode).toBe(409);
    expect(body(res)).toMatchObject({ error_type: "LoanReturnRefused", loan_id: "4444444444444444", distributor_status: 403 });
    expect(body(res).error).toMatch(/refused to return loan 4444444444444444: HTTP Error code 403/);
    expect(body(res).error).not.toMatch(/ACSM/);
    expect(await storedKeys()).toContain(loanKey("4444444444444444"));
  });

  it("applies the converter's address rules to the loan's server", async () => {
    await putToken("3333333333333333", { operatorURL: "https://intranet.library.test/fulfillment" });
    const base = testEgress(distributor);
    const egress = {
      ...base,
      resolver: async (host: string) => (host === "intranet.library.test" ? [{ address: "10.0.0.7", family: 4 }] : base.resolver(host)),
    };
    const { handle } = coldContainer({ egress });
    expect((await convert(handle, makeAcsm())).statusCode).toBe(200);
    const res = await handle(at("POST", "/loans/3333333333333333/return"), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res)).toMatchObject({ error_type: "ForbiddenDestination", refused_host: "intranet.library.test" });
    expect(await storedKeys()).toEqual([loanKey("3333333333333333")]);
  });

  it("catches adept_loan_mgt exiting 0 without returning (\"Error : Loan … doesn't exists\")", async () => {
    // A tools folder whose adept_loan_mgt loses the token before the real stand-in runs: the tool
    // then prints "Error : Loan <id> doesn't exists" and exits 0 (utils/adept_loan_mgt.cpp).
    const tools = mkdtempSync(join(tmpdir(), "knock-tools-"));
    scratch.push(tools);
    for (const t of ["adept_activate", "acsmdownloader", "adept_remove"]) symlinkSync(join(TOOLS_DIR, t), join(tools, t));
    writeFileSync(
      join(tools, "adept_loan_mgt"),
      `#!/usr/bin/env node\nconst a = process.argv.slice(2);\nrequire("node:fs").rmSync(a[a.indexOf("-D") + 1] + "/loans", { recursive: true, force: true });\n` +
        `require(${JSON.stringify(resolve(TOOLS_DIR, "../libgourou-standin"))}).adeptLoanMgt(a);\n`,
    );
    chmodSync(join(tools, "adept_loan_mgt"), 0o755);
    const { handle } = coldContainer({ config: { ...loadConfig(), toolsDir: tools } });
    const { acsm, id } = loanAcsm("Vanishing");
    expect((await convert(handle, acsm)).statusCode).toBe(200);
    const res = await handle(at("POST", `/loans/${id}/return`), fakeContext());
    expect(res.statusCode).toBe(500);
    expect(body(res).error_type).toBe("LoanReturnFailed");
    expect(body(res).error).toContain(`Error : Loan ${id} doesn't exists`);
    expect(await storedKeys()).toEqual([loanKey(id)]);
  });

  it("lets exactly one of two concurrent returns of a loan reach the library; the other gets 404 or 409", async () => {
    const seed = coldContainer();
    const loans = [loanAcsm("Race A"), loanAcsm("Race B"), loanAcsm("Race C")];
    for (const l of loans) expect((await convert(seed.handle, l.acsm)).statusCode).toBe(200);
    const a = coldContainer();
    const b = coldContainer();
    const before = logs.length;
    const results = await Promise.all(
      loans.flatMap((l) => [a.handle(at("POST", `/loans/${l.id}/return`), fakeContext()), b.handle(at("POST", `/loans/${l.id}/return`), fakeContext())]),
    );
    for (let i = 0; i < loans.length; i++) {
      const pair = [results[2 * i], results[2 * i + 1]].map((r) => r.statusCode).sort();
      expect(pair[0]).toBe(200);
      expect([404, 409]).toContain(pair[1]);
    }
    const returnsSent = logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === "returning loan");
    expect(returnsSent).toHaveLength(loans.length);
    expect(await storedKeys()).toEqual([]);
  });

  it("answers 409 while another return holds the marker, and takes over a stale one", async () => {
    await putToken("4444444444444444", {});
    const { handle } = coldContainer();
    expect((await convert(handle, makeAcsm())).statusCode).toBe(200);
    const marker = async (startedAt: Date): Promise<void> => {
      const old = await store.readMarker("4444444444444444");
      if (old) await store.removeMarker("4444444444444444", old.etag);
      expect(await store.createMarker("4444444444444444", JSON.stringify({ started_at: startedAt.toISOString() }))).toBeDefined();
    };
    await marker(new Date());
    const busy = await handle(at("POST", "/loans/4444444444444444/return"), fakeContext());
    expect(busy.statusCode).toBe(409);
    expect(body(busy).error_type).toBe("ReturnInProgress");
    expect((await handle(at("DELETE", "/loans/4444444444444444"), fakeContext())).statusCode).toBe(409);
    await marker(new Date(Date.now() - 20 * 60_000)); // left by an invocation stopped 20 minutes ago
    const res = await handle(at("POST", "/loans/4444444444444444/return"), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(await storedKeys()).toEqual([]);
    expect(await store.readMarker("4444444444444444")).toBeUndefined();
  });

  it("answers 500 DeviceUnavailable instead of activating a device when none is stored", async () => {
    await putToken("5555555555555555", {});
    await deviceStore(s3Objects(client, DEVICE_BUCKET)).remove();
    const activations = (): number => {
      const file = join(stateDir, "activations.log");
      return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
    };
    const before = activations();
    const res = await coldContainer().handle(at("POST", "/loans/5555555555555555/return"), fakeContext());
    expect(res.statusCode).toBe(500);
    expect(body(res).error_type).toBe("DeviceUnavailable");
    expect(activations()).toBe(before);
    expect(await storedKeys()).toEqual([loanKey("5555555555555555")]);
  });
});

describe("failures around the loan", () => {
  it("still answers 200 with the book when the token cannot be stored, saying the loan cannot be returned early", async () => {
    const failing: LoanStore = { ...store, put: () => Promise.reject(new Error("AccessDenied")) };
    const { handle } = coldContainer({ stores: { ...s3Stores(client, loadConfig()), loans: failing } });
    const { acsm, id } = loanAcsm("Unstorable");
    const res = await convert(handle, acsm);
    expect(res.statusCode).toBe(200);
    expect(body(res).files_count).toBe(1);
    expect(body(res).loan).toMatchObject({ id, title: "Unstorable", returnable: false, warning: expect.stringMatching(/could not be recorded/) });
    expect(await storedKeys()).toEqual([]);
  });

  it("sits behind the token check like every other request (function_url_auth = TOKEN)", async () => {
    await putToken("6666666666666666", {});
    const token = "k7Qw2pX9vR4tL8mN3bZ6";
    const config = { ...loadConfig(), functionUrlAuth: "TOKEN" as const, accessTokenSha256: createHash("sha256").update(token, "utf8").digest() };
    const { handle } = coldContainer({ config });
    for (const [method, path] of [["GET", "/loans"], ["POST", "/loans/6666666666666666/return"], ["DELETE", "/loans/6666666666666666"]]) {
      const res = await handle(at(method, path), fakeContext());
      expect(res.statusCode).toBe(401);
    }
    expect(await storedKeys()).toEqual([loanKey("6666666666666666")]);
    const signed = at("GET", "/loans") as unknown as { headers: Record<string, string> };
    signed.headers.authorization = `Bearer ${token}`;
    const res = await handle(signed, fakeContext());
    expect(res.statusCode).toBe(200);
    expect((body(res) as { count: number }).count).toBe(1);
  });
});

describe("DELETE /loans/<id>", () => {
  it("forgets a loan without contacting the library; a second forget gets 404", async () => {
    const { handle } = coldContainer();
    const { acsm, id } = loanAcsm("To Forget");
    expect((await convert(handle, acsm)).statusCode).toBe(200);
    const before = logs.length;
    const res = await handle(at("DELETE", `/loans/${id}`), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ forgotten: true, loan: { id, title: "To Forget" } });
    expect(logs.slice(before).some((l) => /"egress"/.test(l))).toBe(false);
    expect(await storedKeys()).toEqual([]);
    expect((await handle(at("DELETE", `/loans/${id}`), fakeContext())).statusCode).toBe(404);
  });
});

describe("routes", () => {
  it.each([
    ["POST", "/loans/0123456789ABCDEF/return"],
    ["POST", "/loans/..%2F..%2Fdevice/return"],
    ["DELETE", "/loans/0123"],
    ["DELETE", "/loans/0123456789abcdef0"],
  ])("answers 400 for %s %s (a loan id is 16 lowercase hex digits)", async (method, path) => {
    const res = await coldContainer().handle(at(method, path), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/16 lowercase hexadecimal digits/);
  });

  it.each([
    ["PUT", "/loans", "GET"],
    ["POST", "/loans", "GET"],
    ["DELETE", "/loans/", "GET"],
    ["GET", "/loans/0123456789abcdef/return", "POST"],
    ["DELETE", "/loans/0123456789abcdef/return", "POST"],
    ["GET", "/loans/0123456789abcdef", "DELETE"],
    ["POST", "/loans/0123456789abcdef", "DELETE"],
  ])("answers 405 for %s %s, with Allow: %s (RFC 9110 §15.5.6)", async (method, path, allow) => {
    const res = await coldContainer().handle(at(method, path), fakeContext());
    expect(res.statusCode).toBe(405);
    expect(body(res).error_type).toBe("MethodNotAllowed");
    expect(res.headers.allow).toBe(allow);
  });

  it.each(["/nothing", "/loans/0123456789abcdef/renew", "/loans/a/b/c"])("answers 404 JSON for GET %s", async (path) => {
    const res = await coldContainer().handle(at("GET", path), fakeContext());
    expect(res.statusCode).toBe(404);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(body(res)).toMatchObject({ error_type: "NotFound", routes: ["GET /", "POST /", "GET /loans", "POST /loans/<id>/return", "DELETE /loans/<id>", "POST /kindle"] });
  });

  it("reads the path from requestContext.http.path when rawPath is absent, and accepts a trailing slash", async () => {
    const event = at("GET", "/loans/") as { rawPath?: string };
    delete event.rawPath;
    const res = await coldContainer().handle(event, fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res)).toEqual({ loans: [], count: 0 });
  });

  it("lists adept_loan_mgt in the health answer", async () => {
    const res = await coldContainer().handle(urlEvent("GET"), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res).converter).toEqual({ acsmdownloader: "Current libgourou version : 0.8.9", adept_loan_mgt: "Current libgourou version : 0.8.9" });
  });
});
