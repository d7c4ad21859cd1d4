// Other websites cannot make the service act (issue 16): a state-changing request that a browser
// says another page sent — Origin not the service's own (or "null"), Sec-Fetch-Site cross-site or
// same-site — is refused with 403 CrossOriginRequest before its body is read, and nothing is
// converted, fetched, returned or forgotten. The real handler, a real S3-protocol server on
// 127.0.0.1, the libgourou stand-ins; the events are Function URL events as the requests produce them.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadConfig, type HandlerConfig } from "../../lambda/src/config";
import { refuseCrossOrigin } from "../../lambda/src/cross-origin";
import { CrossOriginRequestError } from "../../lambda/src/errors";
import { OUTPUT_BUCKET, fakeContext, makeAcsm } from "./harness";
import { handlerWorld } from "./world";
import { FUNCTION_HOST, OWN_ORIGIN, fromPage, functionUrlEvent } from "./browser-events";

const world = handlerWorld();

/** A fresh (cold) container of the real handler, configured from the environment. */
function coldContainer(config: HandlerConfig = loadConfig()) {
  return world.container({ config });
}

function body(res: { body: string }): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** Objects the output bucket holds for this request id (S3 ListObjectsV2): a conversion stores its book there. */
async function storedBooks(requestId: string): Promise<string[]> {
  const res = await fetch(`${world.s3.endpoint}/${OUTPUT_BUCKET}?list-type=2&prefix=${encodeURIComponent(`converted/${requestId}/`)}`);
  expect(res.status).toBe(200);
  return [...(await res.text()).matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
}

/** What a request left behind: books stored, log records of its work, connections to the distributor. */
async function traces(requestId: string, logsBefore: number, hitsBefore: number) {
  const records = world.logs.slice(logsBefore).map((l) => JSON.parse(l) as { message: string; request_id: string });
  return {
    books: await storedBooks(requestId),
    work: records.filter((r) => r.request_id === requestId && /conversion requested|egress|activat/.test(r.message)).map((r) => r.message),
    distributorHits: world.distributor.hits.length - hitsBefore,
  };
}

/** A stored loan (the token as acsmdownloader writes it) and its id. */
async function storedLoan(title: string): Promise<string> {
  const id = createHash("sha1").update(title).digest("hex").slice(0, 16);
  await world.loanStore.put(
    id,
    `<?xml version="1.0"?>\n<loanToken>\n  <id>urn:uuid:${id}</id>\n  <operatorURL>https://acs.library.test/fulfillment</operatorURL>\n` +
      `  <validity>2099-01-01T00:00:00+00:00</validity>\n  <name>${title}</name>\n</loanToken>\n`,
  );
  return id;
}

const ACSM = () => makeAcsm({ title: "Not Yours" });
const ATTACKER = "https://evil.example";

describe("state-changing requests from other pages are refused", () => {
  it.each([
    ["a form post from another site (text/plain)", { ...fromPage(ATTACKER, "cross-site"), "content-type": "text/plain" }],
    ["a form post from another site (urlencoded)", { ...fromPage(ATTACKER, "cross-site"), "content-type": "application/x-www-form-urlencoded" }],
    ["a multipart form post from another site", { ...fromPage(ATTACKER, "cross-site"), "content-type": "multipart/form-data; boundary=x" }],
    ["a no-cors fetch of a typeless Blob (no Content-Type at all)", fromPage(ATTACKER, "cross-site")],
    ["a preflighted JSON fetch (the Function URL's CORS rule admits any origin)", { ...fromPage(ATTACKER, "cross-site"), "content-type": "application/json" }],
    ["Origin: null (a sandboxed frame, a file, a redirect), even without Sec-Fetch-Site", { origin: "null", "content-type": "text/plain" }],
    ["a foreign Origin from a browser without Fetch Metadata", { origin: ATTACKER, "content-type": "application/vnd.adobe.adept+xml" }],
    ["Sec-Fetch-Site: cross-site from a browser that sent no Origin", { "sec-fetch-site": "cross-site", "content-type": "application/vnd.adobe.adept+xml" }],
    ["Sec-Fetch-Site: same-site (another subdomain or port of the same site)", { "sec-fetch-site": "same-site", "content-type": "application/vnd.adobe.adept+xml" }],
    ["an Origin that only ends with the service's name", { origin: `https://${FUNCTION_HOST}.evil.example`, "content-type": "application/json" }],
    ["an Origin that only starts with the service's name", { origin: `https://${FUNCTION_HOST.split(".")[0]}.lambda-url.us-west-2.on.aws.evil.example`, "content-type": "application/json" }],
  ])("%s: 403 CrossOriginRequest, and nothing is converted", async (_, headers) => {
    const handle = coldContainer();
    const context = fakeContext();
    const [logsBefore, hitsBefore] = [world.logs.length, world.distributor.hits.length];
    const payload = headers["content-type"] === "application/json" ? JSON.stringify({ acsm_content: ACSM() }) : ACSM();
    const res = await handle(functionUrlEvent({ method: "POST", headers, body: payload }), context);
    expect(res.statusCode).toBe(403);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(body(res)).toMatchObject({ error_type: "CrossOriginRequest", request_id: context.awsRequestId });
    expect(String(body(res).error)).toMatch(/accepted only from this service's own page, or from clients that send no Origin header \(curl, knock\)/);
    expect(await traces(context.awsRequestId, logsBefore, hitsBefore)).toEqual({ books: [], work: [], distributorHits: 0 });
  });

  it("says which page sent it, and the service's own address", async () => {
    const res = await coldContainer()(functionUrlEvent({ method: "POST", headers: { ...fromPage(ATTACKER, "cross-site"), "content-type": "text/plain" }, body: ACSM() }), fakeContext());
    expect(body(res)).toMatchObject({ origin: ATTACKER });
    expect(body(res).error).toBe(
      `This POST request was sent by a page at ${ATTACKER}, which is not this service's own address (${FUNCTION_HOST}). ` +
        "Requests that change something are accepted only from this service's own page, or from clients that send no Origin header (curl, knock).",
    );
    const nul = await coldContainer()(functionUrlEvent({ method: "POST", headers: { origin: "null" }, body: ACSM() }), fakeContext());
    expect(body(nul).error).toMatch(/^This POST request has Origin: null: a browser sent it from a sandboxed frame, a file or a data: URL, or after a redirect from another site/);
    const site = await coldContainer()(functionUrlEvent({ method: "POST", headers: { "sec-fetch-site": "cross-site" }, body: ACSM() }), fakeContext());
    expect(body(site)).toMatchObject({ sec_fetch_site: "cross-site" });
    expect(body(site).error).toMatch(/^The browser marked this POST request Sec-Fetch-Site: cross-site: it was sent by a page on another site or another port/);
  });

  it("a foreign page can neither return nor forget a loan: it stays stored", async () => {
    const handle = coldContainer();
    const id = await storedLoan("Kept Loan");
    const [logsBefore, hitsBefore] = [world.logs.length, world.distributor.hits.length];
    const returned = await handle(functionUrlEvent({ method: "POST", path: `/loans/${id}/return`, headers: fromPage(ATTACKER, "cross-site") }), fakeContext());
    const forgotten = await handle(functionUrlEvent({ method: "DELETE", path: `/loans/${id}`, headers: { origin: "null" } }), fakeContext());
    expect([returned.statusCode, forgotten.statusCode]).toEqual([403, 403]);
    expect([body(returned).error_type, body(forgotten).error_type]).toEqual(["CrossOriginRequest", "CrossOriginRequest"]);
    expect((await world.loanStore.get(id))?.xml).toContain("<name>Kept Loan</name>");
    expect(world.distributor.hits.length - hitsBefore).toBe(0);
    expect(world.logs.slice(logsBefore).some((l) => l.includes('"message":"egress"'))).toBe(false);
    await world.loanStore.removeIfUnchanged(id, (await world.loanStore.get(id))!.etag);
  });

  it("refuses any method that is not GET, HEAD or OPTIONS, whatever the route would have said", async () => {
    const handle = coldContainer();
    for (const method of ["PUT", "PATCH", "DELETE"]) {
      const res = await handle(functionUrlEvent({ method, headers: fromPage(ATTACKER, "cross-site"), body: "{}" }), fakeContext());
      expect([method, res.statusCode, body(res).error_type]).toEqual([method, 403, "CrossOriginRequest"]);
    }
  });

  it("checks the origin before the body: an oversized foreign body is 403, not 413", async () => {
    const big = makeAcsm().replace("<hmac>", `<!-- ${"x".repeat(300 * 1024)} --><hmac>`);
    const res = await coldContainer()(functionUrlEvent({ method: "POST", headers: { ...fromPage(ATTACKER, "cross-site"), "content-type": "text/plain" }, body: big }), fakeContext());
    expect(res.statusCode).toBe(403);
  });
});

describe("what still works", () => {
  it("the service's own page converts (Origin its own, Sec-Fetch-Site: same-origin, JSON as the page sends it)", async () => {
    const context = fakeContext();
    const res = await coldContainer()(
      functionUrlEvent({ method: "POST", headers: { ...fromPage(OWN_ORIGIN, "same-origin"), "content-type": "application/json" }, body: JSON.stringify({ acsm_content: makeAcsm({ title: "Mine" }) }) }),
      context,
    );
    expect(res.statusCode).toBe(200);
    expect(await storedBooks(context.awsRequestId)).toEqual([`converted/${context.awsRequestId}/Mine.epub`]);
  });

  it("curl and knock (neither Origin nor Sec-Fetch-Site) convert", async () => {
    const context = fakeContext();
    const res = await coldContainer()(
      functionUrlEvent({ method: "POST", headers: { "content-type": "application/vnd.adobe.adept+xml", "user-agent": "curl/8.14.1" }, body: makeAcsm({ title: "By Curl" }), base64: true }),
      context,
    );
    expect(res.statusCode).toBe(200);
    expect(await storedBooks(context.awsRequestId)).toEqual([`converted/${context.awsRequestId}/By Curl.epub`]);
  });

  it("the page's own loan return goes through to the loan's server", async () => {
    const handle = coldContainer();
    // A device first, as the page's first conversion would make one.
    expect((await handle(functionUrlEvent({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: makeAcsm() }) }), fakeContext())).statusCode).toBe(200);
    const id = await storedLoan("Page Return");
    const res = await handle(functionUrlEvent({ method: "POST", path: `/loans/${id}/return`, headers: fromPage(OWN_ORIGIN, "same-origin") }), fakeContext());
    expect(res.statusCode).toBe(200);
    expect(body(res)).toMatchObject({ returned: true, loan: { id } });
    expect(await world.loanStore.get(id)).toBeUndefined();
  });

  it("reads from other pages are answered (the browser keeps the answer from them unless CORS allows it)", async () => {
    const handle = coldContainer();
    const health = await handle(functionUrlEvent({ method: "GET", headers: fromPage(ATTACKER, "cross-site") }), fakeContext());
    expect(health.statusCode).toBe(200);
    const preflight = await handle(functionUrlEvent({ method: "OPTIONS", headers: { origin: ATTACKER, "access-control-request-method": "POST" } }), fakeContext());
    expect(body(preflight).error_type).not.toBe("CrossOriginRequest");
  });

  it("direct invocations (no headers at all) convert", async () => {
    const res = await coldContainer()({ acsm_content: makeAcsm({ title: "Direct" }) }, fakeContext());
    expect(res.statusCode).toBe(200);
  });
});

describe("in TOKEN mode a simple cross-origin request cannot get past the token", () => {
  const TOKEN = "Zq3-tV9_kLm2Pw8xRb5YcN1dHs7uJe4aGf6oTi0QwEr";
  const tokenConfig = (): HandlerConfig => ({ ...loadConfig(), accessTokenSha256: createHash("sha256").update(TOKEN).digest(), functionUrlAuth: "TOKEN" });

  it.each(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])(
    "a %s form post from another site without Authorization is 401, and nothing is converted",
    async (contentType) => {
      const context = fakeContext();
      const [logsBefore, hitsBefore] = [world.logs.length, world.distributor.hits.length];
      // A simple request cannot carry Authorization: it is not a CORS-safelisted request-header.
      const res = await coldContainer(tokenConfig())(functionUrlEvent({ method: "POST", headers: { ...fromPage(ATTACKER, "cross-site"), "content-type": contentType }, body: ACSM() }), context);
      expect(res.statusCode).toBe(401);
      // The token is checked first: a caller without it learns nothing else, not even the origin rule.
      expect(body(res).error_type).toBe("Unauthorized");
      expect(await traces(context.awsRequestId, logsBefore, hitsBefore)).toEqual({ books: [], work: [], distributorHits: 0 });
    },
  );

  it("even a foreign page that has the token is refused: 403, nothing converted", async () => {
    const context = fakeContext();
    const [logsBefore, hitsBefore] = [world.logs.length, world.distributor.hits.length];
    const res = await coldContainer(tokenConfig())(
      functionUrlEvent({ method: "POST", headers: { ...fromPage(ATTACKER, "cross-site"), "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ acsm_content: ACSM() }) }),
      context,
    );
    expect([res.statusCode, body(res).error_type]).toEqual([403, "CrossOriginRequest"]);
    expect(await traces(context.awsRequestId, logsBefore, hitsBefore)).toEqual({ books: [], work: [], distributorHits: 0 });
  });

  it("the page with the token converts", async () => {
    const res = await coldContainer(tokenConfig())(
      functionUrlEvent({ method: "POST", headers: { ...fromPage(OWN_ORIGIN, "same-origin"), "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ acsm_content: makeAcsm() }) }),
      fakeContext(),
    );
    expect(res.statusCode).toBe(200);
  });
});

describe("the rule (refuseCrossOrigin)", () => {
  const check = (headers: Record<string, string>, domainName?: string, method = "POST") => () => refuseCrossOrigin({ method, headers, domainName });

  it.each([
    ["knock serve's page", { host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080" }],
    ["a name in another case", { host: "LocalHost:8080", origin: "http://localhost:8080" }],
    ["an IPv6 loopback page", { host: "[::1]:8080", origin: "http://[::1]:8080" }],
    ["a Host with the default port spelled out", { host: `${FUNCTION_HOST}:443`, origin: OWN_ORIGIN }],
    ["Sec-Fetch-Site: none (the user typed the address)", { "sec-fetch-site": "none" }],
    ["Sec-Fetch-Site: same-origin with the page's own Origin", { host: FUNCTION_HOST, origin: OWN_ORIGIN, "sec-fetch-site": "same-origin" }],
  ])("accepts %s", (_, headers) => {
    expect(check(headers)).not.toThrow();
  });

  it("uses the Function URL's domainName when a request has no Host header", () => {
    expect(check({ origin: OWN_ORIGIN }, FUNCTION_HOST)).not.toThrow();
    expect(check({ origin: ATTACKER }, FUNCTION_HOST)).toThrow(CrossOriginRequestError);
    // Nothing says which address is the service's own: an Origin cannot be shown to be it.
    expect(check({ origin: OWN_ORIGIN })).toThrow(CrossOriginRequestError);
  });

  it.each([
    ["another port of the same host", { host: "127.0.0.1:8080", origin: "http://127.0.0.1:8081" }],
    ["another loopback address", { host: "127.0.0.1:8080", origin: "http://127.0.0.2:8080" }],
    ["a name that resolves to the same address", { host: "127.0.0.1:8080", origin: "http://localhost:8080" }],
    ["an Origin with a path (no browser sends one)", { host: FUNCTION_HOST, origin: `${OWN_ORIGIN}/` }],
    ["an Origin with credentials", { host: FUNCTION_HOST, origin: `https://user@${FUNCTION_HOST}` }],
    ["a non-http Origin", { host: FUNCTION_HOST, origin: `chrome-extension://${FUNCTION_HOST}` }],
    ["two Origins joined by payload 2.0", { host: FUNCTION_HOST, origin: `${OWN_ORIGIN},${ATTACKER}` }],
    ["NULL in capitals", { host: FUNCTION_HOST, origin: "NULL" }],
    ["the own Origin but Sec-Fetch-Site: cross-site", { host: FUNCTION_HOST, origin: OWN_ORIGIN, "sec-fetch-site": "cross-site" }],
    ["a Sec-Fetch-Site value no browser sends", { "sec-fetch-site": "same-origin, cross-site" }],
  ])("refuses %s", (_, headers) => {
    expect(check(headers)).toThrow(CrossOriginRequestError);
  });

  it("never applies to GET, HEAD or OPTIONS", () => {
    for (const method of ["GET", "HEAD", "OPTIONS", "get"]) expect(check({ origin: "null", "sec-fetch-site": "cross-site" }, undefined, method)).not.toThrow();
  });

  it("echoes at most 200 characters of what the caller sent", () => {
    const origin = `https://${"a".repeat(300)}.example`;
    try {
      refuseCrossOrigin({ method: "POST", headers: { host: FUNCTION_HOST, origin }, domainName: undefined });
      expect.unreachable();
    } catch (err) {
      expect((err as CrossOriginRequestError).details.origin).toBe(`${origin.slice(0, 200)}…`);
      expect((err as CrossOriginRequestError).statusCode).toBe(403);
    }
  });
});
