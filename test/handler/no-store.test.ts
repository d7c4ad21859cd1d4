// No cache keeps a private answer (issue 16): every JSON answer of every route — download links,
// loans, the health of a private service, errors — carries `Cache-Control: no-store` (RFC 9111
// §5.2.2.5; OWASP ASVS V8.2.1). The page is `no-cache` instead: it holds nothing private, its CSP
// hashes travel in the same response as the body they hash, and every use asks the service first.
// The real handler, a real S3-protocol server on 127.0.0.1, the libgourou stand-ins.
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { Handler, HandlerResult } from "../../lambda/src/handler";
import type { HandlerStores } from "../../lambda/src/stores";
import type { TestHandlerDeps } from "../support/test-handler";
import { loadConfig, type HandlerConfig } from "../../lambda/src/config";
import { fakeContext, makeAcsm } from "./harness";
import { handlerWorld } from "./world";
import { functionUrlEvent, type WireRequest } from "./browser-events";

const world = handlerWorld();
const container = (deps: Partial<TestHandlerDeps> = {}) => world.container({ logSink: () => undefined, ...deps });

const json = (contentType = "application/json") => ({ "content-type": contentType });
const request = (handle: Handler, wire: WireRequest) => handle(functionUrlEvent(wire), fakeContext());

/** A loan ACSM and the id the service gives its loan (libgourou: SHA-1 of the loan id, 16 hex digits). */
function loanAcsm(title: string): { acsm: string; id: string } {
  const acsm = makeAcsm({ title, expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  return { acsm, id: createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16) };
}

function expectNoStore(res: HandlerResult, status: number): void {
  expect(res.statusCode).toBe(status);
  expect(res.headers["content-type"]).toBe("application/json");
  expect(res.headers["cache-control"]).toBe("no-store");
}

describe("every JSON answer is no-store", () => {
  it("the health answer, healthy and not", async () => {
    expectNoStore(await request(container(), { method: "GET", headers: { accept: "application/json" } }), 200);
    const noTools: HandlerConfig = { ...loadConfig(), toolsDir: join(tmpdir(), "knock-no-such-tools") };
    expectNoStore(await request(container({ config: noTools }), { method: "GET" }), 500);
  });

  it("a conversion's answer, which carries the download link", async () => {
    const res = await request(container(), { method: "POST", headers: json(), body: JSON.stringify({ acsm_content: makeAcsm() }) });
    expectNoStore(res, 200);
    expect(JSON.parse(res.body).output_files[0].download_url).toMatch(/^http/);
  });

  it("the loan routes: list, return, forget", async () => {
    const handle = container();
    const { acsm, id } = loanAcsm("Cached Nowhere");
    expectNoStore(await request(handle, { method: "POST", headers: json(), body: JSON.stringify({ acsm_content: acsm }) }), 200);
    const list = await request(handle, { method: "GET", path: "/loans" });
    expectNoStore(list, 200);
    expect(JSON.parse(list.body).loans.map((l: { id: string }) => l.id)).toContain(id);
    expectNoStore(await request(handle, { method: "POST", path: `/loans/${id}/return` }), 200);
    await world.loanStore.put("abcdefabcdefabcd", "<loanToken><id>urn:uuid:x</id><name>To Forget</name></loanToken>");
    expectNoStore(await request(handle, { method: "DELETE", path: "/loans/abcdefabcdefabcd" }), 200);
  });

  it.each([
    [400, { method: "POST", headers: json(), body: "{}" }],
    [403, { method: "POST", headers: { origin: "https://evil.example" }, body: makeAcsm() }],
    [404, { method: "GET", path: "/nowhere" }],
    [404, { method: "POST", path: "/loans/0123456789abcdef/return" }],
    [405, { method: "PUT", body: "{}" }],
    [410, { method: "POST", headers: json(), body: JSON.stringify({ acsm_content: makeAcsm({ expiration: "2020-01-01T00:00:00+00:00" }) }) }],
    [413, { method: "POST", headers: json("application/xml"), body: makeAcsm().replace("<hmac>", `<!-- ${"x".repeat(300 * 1024)} --><hmac>`) }],
    [415, { method: "POST", headers: json("text/plain"), body: makeAcsm() }],
  ] as const)("an error: %i", async (status, wire) => {
    expectNoStore(await request(container(), wire), status);
  });

  it("a 401 in token mode", async () => {
    const config: HandlerConfig = { ...loadConfig(), accessTokenSha256: createHash("sha256").update("t").digest(), functionUrlAuth: "TOKEN" };
    expectNoStore(await request(container({ config }), { method: "GET", path: "/loans" }), 401);
  });

  it("an unexpected failure's 500", async () => {
    const broken = { load: async () => { throw new Error("disk on fire"); } } as unknown as HandlerStores["device"];
    const res = await request(container({ stores: { ...world.stores(), device: broken } }), { method: "POST", headers: json(), body: JSON.stringify({ acsm_content: makeAcsm() }) });
    expectNoStore(res, 500);
    expect(JSON.parse(res.body).error_type).toBe("InternalError");
  });

  it("the entry point's answer when the function is misconfigured", async () => {
    const env = { ...process.env };
    delete process.env.OUTPUT_BUCKET;
    vi.resetModules();
    try {
      const { handler } = await import("../../lambda/src/handler");
      vi.spyOn(process.stdout, "write").mockImplementation(() => true);
      const res = await handler(functionUrlEvent({ method: "GET" }), fakeContext() as never);
      vi.restoreAllMocks();
      expectNoStore(res, 500);
      expect(JSON.parse(res.body).error_type).toBe("Misconfigured");
    } finally {
      vi.restoreAllMocks();
      process.env = env;
    }
  });
});

describe("the page is no-cache", () => {
  it("may be stored but is used only after asking the service, and a stored copy's CSP always fits its body", async () => {
    const res = await request(container(), { method: "GET", headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache");
    // The same URL answers JSON to API clients: a cache keeps the two apart by Accept.
    expect(res.headers.vary).toBe("Accept");
    // The hashes the CSP allows are those of this very response's inline script and style.
    const sha = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
    const script = /<script>([\s\S]*?)<\/script>/.exec(res.body)![1];
    const style = /<style>([\s\S]*?)<\/style>/.exec(res.body)![1];
    expect(res.headers["content-security-policy"]).toContain(`script-src ${sha(script)}`);
    expect(res.headers["content-security-policy"]).toContain(`style-src ${sha(style)}`);
  });
});
