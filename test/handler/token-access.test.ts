// Token access (function_url_auth = TOKEN): the handler asks every Function URL request but the page
// for `Authorization: Bearer <token>`, knowing only the token's SHA-256.
import { createHash, timingSafeEqual } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { bearerToken, tokenMatches, tokenSha256 } from "../../lambda/src/access";
import { loadConfig, type HandlerConfig } from "../../lambda/src/config";
import { createHandler } from "../../lambda/src/handler";
import { quality } from "../../lambda/src/request";
import { ROUTES } from "../../lambda/src/contract";
import { routeOf } from "../../lambda/src/routes";
import { fakeContext, makeAcsm, TOOLS_DIR, urlEvent } from "./harness";

// Wraps the real timingSafeEqual so the tests can see what it compares.
vi.mock("node:crypto", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:crypto")>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const TOKEN = "Zq3-tV9_kLm2Pw8xRb5YcN1dHs7uJe4aGf6oTi0QwEr";
const HASH = createHash("sha256").update(TOKEN).digest();

function tokenHandler() {
  const logs: string[] = [];
  const stores: string[] = [];
  const config: HandlerConfig = {
    outputBucket: "unused", deviceBucket: "unused", downloadUrlExpirySeconds: 3600, toolsDir: TOOLS_DIR, s3Endpoint: undefined,
    accessTokenSha256: HASH, functionUrlAuth: "TOKEN",
  };
  const refuse = (what: string) => async (): Promise<never> => {
    stores.push(what);
    throw new Error(`${what} must not be reached`);
  };
  const handle = createHandler({
    config,
    stores: {
      device: { load: refuse("device load"), loadVersioned: refuse("device load"), storeIfAbsent: refuse("device store"), remove: refuse("device remove") } as never,
      output: { keep: refuse("book upload") },
      loans: {
        list: refuse("loan list"), get: refuse("loan get"), put: refuse("loan put"), removeIfUnchanged: refuse("loan remove"),
        createMarker: refuse("marker create"), readMarker: refuse("marker read"), removeMarker: refuse("marker remove"),
      },
    },
    logSink: (line) => logs.push(line),
  });
  return { handle, logs, stores };
}

function withHeaders(event: unknown, headers: Record<string, string>): unknown {
  const e = event as { headers: Record<string, string> };
  return { ...e, headers: { ...e.headers, ...headers } };
}

describe("the token check", () => {
  it("accepts only the exact token", () => {
    expect(tokenMatches(TOKEN, HASH)).toBe(true);
    expect(tokenMatches(TOKEN.toLowerCase(), HASH)).toBe(false);
    expect(tokenMatches(TOKEN.slice(0, -1), HASH)).toBe(false);
    expect(tokenMatches(undefined, HASH)).toBe(false);
  });

  it("compares fixed-length SHA-256 digests in constant time, so inputs of any length never throw", () => {
    vi.mocked(timingSafeEqual).mockClear();
    for (const presented of ["", "x", TOKEN, "y".repeat(100_000)]) expect(() => tokenMatches(presented, HASH)).not.toThrow();
    expect(timingSafeEqual).toHaveBeenCalledTimes(4);
    for (const [a, b] of vi.mocked(timingSafeEqual).mock.calls) {
      expect([(a as Buffer).length, (b as Buffer).length]).toEqual([32, 32]);
    }
    expect(tokenSha256(TOKEN).equals(HASH)).toBe(true);
  });

  it.each([
    ["Bearer abc", "abc"], ["bearer abc", "abc"], ["BEARER abc", "abc"], ["Bearer   abc ", "abc"],
    ["Basic abc", undefined], ["Bearer", undefined], ["Bearer a b", undefined], ["Bearerabc", undefined], [undefined, undefined],
  ])("reads %j as token %j (RFC 7235: the scheme is case-insensitive)", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe("the handler in token mode", () => {
  it.each([
    ["no Authorization header", {}],
    ["a wrong token", { authorization: "Bearer not-the-token" }],
    ["the token in other case", { authorization: `Bearer ${TOKEN.toUpperCase()}` }],
    ["another scheme", { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` }],
  ])("answers 401 Unauthorized to %s and converts nothing", async (_, headers) => {
    const { handle, logs, stores } = tokenHandler();
    const context = fakeContext();
    const answer = await handle(withHeaders(urlEvent("POST", makeAcsm()), headers), context);
    expect(answer.statusCode).toBe(401);
    expect(answer.headers["www-authenticate"]).toBe('Bearer realm="knock-lambda"');
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    expect(body).toMatchObject({ error_type: "Unauthorized", request_id: context.awsRequestId });
    expect(String(body.error)).toMatch(/access (link|token)/);
    expect(stores).toEqual([]);
    expect(logs.some((l) => l.includes("conversion requested"))).toBe(false);
    expect(logs.some((l) => l.includes('"message":"access refused"'))).toBe(true);
  });

  it("refuses the health answer without the token, and gives it with the token (bearer in any case)", async () => {
    const { handle } = tokenHandler();
    expect((await handle(urlEvent("GET"), fakeContext())).statusCode).toBe(401);
    const answer = await handle(withHeaders(urlEvent("GET"), { authorization: `bearer ${TOKEN}` }), fakeContext());
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ status: "ok", auth: "TOKEN" });
  });

  it("lets a request with the token through to the usual checks", async () => {
    const { handle } = tokenHandler();
    const answer = await handle(withHeaders(urlEvent("POST", "{}"), { authorization: `Bearer ${TOKEN}` }), fakeContext());
    expect(answer.statusCode).toBe(400);
    expect(JSON.parse(answer.body).error_type).toBe("BadRequest");
  });

  it("serves the page without a token, with its security headers", async () => {
    const { handle } = tokenHandler();
    const answer = await handle(withHeaders(urlEvent("GET"), { accept: "text/html,application/xhtml+xml,*/*;q=0.8" }), fakeContext());
    expect(answer.statusCode).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(answer.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    expect(answer.headers["referrer-policy"]).toBe("no-referrer");
    expect(answer.body).toMatch(/^<!doctype html>/);
  });

  it("never writes the token, right or wrong, to its logs or answers", async () => {
    const { handle, logs } = tokenHandler();
    const wrong = `${TOKEN}-guess`;
    const answers = [
      await handle(withHeaders(urlEvent("POST", "{}"), { authorization: `Bearer ${TOKEN}` }), fakeContext()),
      await handle(withHeaders(urlEvent("POST", "{}"), { authorization: `Bearer ${wrong}` }), fakeContext()),
      await handle(withHeaders(urlEvent("GET"), { authorization: `Bearer ${TOKEN}` }), fakeContext()),
    ];
    const everything = logs.join("\n") + answers.map((a) => a.body + JSON.stringify(a.headers)).join("\n");
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(wrong);
  });

  it("takes direct invocations (already authorised by IAM's lambda:InvokeFunction) without a token", async () => {
    const { handle } = tokenHandler();
    const answer = await handle({ acsm_content: "not xml" }, fakeContext());
    expect(answer.statusCode).toBe(400);
  });
});

describe("the function's environment for token mode", () => {
  const base = { OUTPUT_BUCKET: "o", DEVICE_CREDENTIALS_BUCKET: "d", LIBGOUROU_BIN_DIR: "/opt/bin" };

  it("reads the hash and reports the mode", () => {
    const config = loadConfig({ ...base, ACCESS_TOKEN_SHA256: HASH.toString("hex"), FUNCTION_URL_AUTH: "TOKEN" });
    expect(config.accessTokenSha256?.equals(HASH)).toBe(true);
    expect(config.functionUrlAuth).toBe("TOKEN");
    expect(loadConfig({ ...base, FUNCTION_URL_AUTH: "AWS_IAM" }).accessTokenSha256).toBeUndefined();
  });

  it("refuses to run open: TOKEN without a hash, or a hash that is not one", () => {
    expect(() => loadConfig({ ...base, FUNCTION_URL_AUTH: "TOKEN" })).toThrow(/ACCESS_TOKEN_SHA256 is required/);
    expect(() => loadConfig({ ...base, ACCESS_TOKEN_SHA256: TOKEN })).toThrow(/64 hex digits/);
    expect(() => loadConfig({ ...base, FUNCTION_URL_AUTH: "OPEN" })).toThrow('FUNCTION_URL_AUTH is "OPEN"; expected one of AWS_IAM, NONE, TOKEN.');
  });
});

describe("which GET gets the page", () => {
  const get = (accept: string | undefined, rawPath = "/") => ({
    rawPath, headers: accept === undefined ? {} : { accept }, requestContext: { http: { method: "GET" } },
  });
  /** True when the router sends the event to the page (the route table's `page`, chosen by Accept). */
  const isPageRequest = (event: unknown): boolean => {
    try {
      return routeOf(event, ROUTES).route.id === "page";
    } catch {
      return false; // 404 or 405: no route, so not the page either
    }
  };

  it.each([
    ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true],
    ["text/html", true],
    ["*/*", false],
    ["application/json", false],
    ["text/html;q=0.5, application/json", false],
    ["text/html, application/json", false],
    ["text/*;q=0.9, */*;q=0.1", true],
    [undefined, false],
  ])("Accept %j → page: %s", (accept, page) => {
    expect(isPageRequest(get(accept))).toBe(page);
  });

  it("only at /, and only for GET", () => {
    expect(isPageRequest(get("text/html", "/loans"))).toBe(false);
    expect(isPageRequest({ ...get("text/html"), requestContext: { http: { method: "POST" } } })).toBe(false);
  });

  it("weighs the most specific range (RFC 9110 §12.5.1)", () => {
    expect(quality("text/*;q=0.3, text/html;q=0.7, */*;q=1", "text", "html")).toBe(0.7);
    expect(quality("text/plain", "text", "html")).toBe(0);
  });
});
