// `knock serve`'s Function URL adapter, checked against AWS's documented request payload (AWS
// Lambda Developer Guide, "Invoking Lambda function URLs", "Request payload format"; the example
// is test/fixtures/function-url/aws-docs-request-payload.json) and its response rules.
import { readFileSync } from "node:fs";
import { request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createFunctionUrlServer, type LambdaHandler, type LocalLambdaContext } from "../../client/serve/function-url-server";
import { isTextContentType, MAX_REQUEST_BYTES, requestTime, type FunctionUrlEvent } from "../../client/serve/function-url-event";
import { cliEnv, knock, scratchDir, cleanup } from "./helpers";
import { makeAcsm } from "../handler/harness";
import { writeFileSync } from "node:fs";

const DOCUMENTED = JSON.parse(readFileSync(join(__dirname, "../fixtures/function-url/aws-docs-request-payload.json"), "utf8")) as Record<string, unknown>;
delete DOCUMENTED._source;

let server: Server | undefined;
const scratch: string[] = [];

afterEach(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((done) => server!.close(() => done()));
  }
  server = undefined;
  cleanup(scratch);
});

/** Starts the adapter around `handler`, recording every event and context it passes. */
async function serve(handler: LambdaHandler, timeoutMs?: number): Promise<{ port: number; events: FunctionUrlEvent[]; contexts: LocalLambdaContext[] }> {
  const events: FunctionUrlEvent[] = [];
  const contexts: LocalLambdaContext[] = [];
  server = createFunctionUrlServer({
    handler: async (event, context) => {
      events.push(event);
      contexts.push(context);
      return handler(event, context);
    },
    timeoutMs,
    log: () => undefined,
  });
  await new Promise<void>((done) => server!.listen(0, "127.0.0.1", done));
  return { port: (server.address() as AddressInfo).port, events, contexts };
}

/** Sends a raw request (headers as an array, so names may repeat). */
function send(port: number, method: string, path: string, headers: [string, string][], body?: Buffer | string) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((done, fail) => {
    // Raw headers as a flat array keep repeats and case; with an array Node adds no Host, so add it.
    const raw = [["Host", `127.0.0.1:${port}`], ...headers].flat();
    const req = request({ host: "127.0.0.1", port, method, path, headers: raw as unknown as Record<string, string> }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", fail);
    req.end(body);
  });
}

const ok: LambdaHandler = async () => ({ statusCode: 200, headers: { "content-type": "text/plain" }, body: "fine" });

describe("request → event (payload format 2.0)", () => {
  it("builds the documented example's event field by field from the same HTTP request", async () => {
    const { port, events } = await serve(ok);
    const sentAt = Date.now();
    await send(
      port,
      "POST",
      "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
      [
        ["Header1", "value1"],
        ["header2", "value1"],
        ["HEADER2", "value2"],
        ["Cookie", "cookie1; cookie2"],
        ["User-Agent", "agent"],
        ["Content-Type", "text/plain"],
      ],
      "Hello from client!",
    );
    const answeredAt = Date.now();
    const [event] = events as unknown as Record<string, unknown>[];
    const doc = DOCUMENTED;
    // Same top-level shape: every documented field is there (or, for the ones the guide says
    // Lambda "sets to null or excludes", absent), and nothing undocumented was added.
    const mayBeAbsent = new Set(["pathParameters", "stageVariables"]);
    for (const key of Object.keys(doc)) if (!mayBeAbsent.has(key)) expect(event, key).toHaveProperty(key);
    for (const key of Object.keys(event)) expect(doc, `undocumented field ${key}`).toHaveProperty(key);
    for (const key of ["version", "routeKey", "rawPath", "rawQueryString", "cookies", "queryStringParameters", "body", "isBase64Encoded"]) {
      expect(event[key], key).toEqual(doc[key]);
    }
    const docHeaders = doc.headers as Record<string, string>;
    const headers = event.headers as Record<string, string>;
    expect(headers.header1).toBe(docHeaders.header1);
    expect(headers.header2).toBe(docHeaders.header2); // "value1,value2"
    expect(headers).not.toHaveProperty("cookie"); // moved to `cookies`
    for (const name of Object.keys(headers)) expect(name).toBe(name.toLowerCase());

    const ctx = event.requestContext as Record<string, unknown>;
    const docCtx = doc.requestContext as Record<string, unknown>;
    for (const key of Object.keys(ctx)) expect(docCtx, `undocumented requestContext.${key}`).toHaveProperty(key);
    for (const key of ["routeKey", "stage"]) expect(ctx[key], key).toBe(docCtx[key]);
    expect(ctx.http).toEqual({ ...(docCtx.http as object), sourceIp: "127.0.0.1" });
    expect(ctx.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof ctx.timeEpoch).toBe("number");
    // The time the request arrived: after it was sent, before the answer came back.
    expect(ctx.timeEpoch).toBeGreaterThanOrEqual(sentAt);
    expect(ctx.timeEpoch).toBeLessThanOrEqual(answeredAt);
    expect(ctx.time).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(ctx.time).toBe(requestTime(new Date(ctx.timeEpoch as number)));
    expect(requestTime(new Date(1583348638390))).toBe("04/Mar/2020:19:03:58 +0000");
    expect(ctx.domainName).toBe("127.0.0.1");
    // No IAM on a local server: the shape Lambda uses for auth type NONE.
    expect(ctx.accountId).toBe("anonymous");
    expect(ctx).not.toHaveProperty("authorizer");
  });

  it("omits cookies, query parameters and body when the request has none, as Lambda does", async () => {
    const { port, events } = await serve(ok);
    await send(port, "GET", "/", []);
    expect(events[0]).not.toHaveProperty("cookies");
    expect(events[0]).not.toHaveProperty("queryStringParameters");
    expect(events[0]).not.toHaveProperty("body");
    expect(events[0].rawQueryString).toBe("");
    expect(events[0].isBase64Encoded).toBe(false);
  });

  it("passes text bodies as text and everything else base64-encoded", async () => {
    expect(["text/plain", "text/xml; charset=utf-8", "application/json", "Application/JSON", "application/xml", "application/javascript"].every(isTextContentType)).toBe(true);
    expect(["application/octet-stream", "application/vnd.adobe.adept+xml", "application/x-www-form-urlencoded", "application/ld+json", undefined].some(isTextContentType)).toBe(false);

    const { port, events } = await serve(ok);
    const binary = Buffer.from([0, 1, 2, 250, 251, 252]);
    await send(port, "POST", "/", [["content-type", "application/octet-stream"]], binary);
    await send(port, "POST", "/", [], "no content type");
    await send(port, "POST", "/", [["content-type", "application/json"]], '{"acsm_url":"https://x"}');
    expect(events[0]).toMatchObject({ isBase64Encoded: true, body: binary.toString("base64") });
    expect(events[1]).toMatchObject({ isBase64Encoded: true, body: Buffer.from("no content type").toString("base64") });
    expect(events[2]).toMatchObject({ isBase64Encoded: false, body: '{"acsm_url":"https://x"}' });
  });

  it("refuses bodies over 6 MB with 413 before running the function", async () => {
    const { port, events } = await serve(ok);
    const atLimit = await send(port, "POST", "/", [["content-type", "application/octet-stream"]], Buffer.alloc(MAX_REQUEST_BYTES));
    expect(atLimit.status).toBe(200);
    const over = await send(port, "POST", "/", [["content-type", "application/octet-stream"]], Buffer.alloc(MAX_REQUEST_BYTES + 1));
    expect(over.status).toBe(413);
    expect(JSON.parse(over.body.toString())).toEqual({ Message: "Request must be smaller than 6291456 bytes for the InvokeFunction operation" });
    expect(events).toHaveLength(1);
  });

  it("gives the handler a remaining-time budget that counts down from the function's timeout", async () => {
    // Each reading is taken between two clock readings, so what it must be follows from the clock
    // alone, however long a loaded machine takes between the steps.
    const reading = (context: LocalLambdaContext): { before: number; remaining: number; after: number } => {
      const before = Date.now();
      const remaining = context.getRemainingTimeInMillis();
      return { before, remaining, after: Date.now() };
    };
    const { port, contexts } = await serve(async (_e, context) => {
      const first = reading(context);
      await new Promise((r) => setTimeout(r, 200)); // some time for the budget to count down
      return { statusCode: 200, body: JSON.stringify({ first, second: reading(context) }) };
    }, 60_000); // longer than the test may take: the budget never reaches its floor of 0
    const sentAt = Date.now();
    const res = await send(port, "GET", "/", []);
    const { first, second } = JSON.parse(res.body.toString()) as Record<"first" | "second", ReturnType<typeof reading>>;
    // The budget starts at the timeout when the request arrives (after it was sent) ...
    expect(first.remaining).toBeLessThanOrEqual(60_000);
    expect(first.remaining).toBeGreaterThanOrEqual(60_000 - (first.after - sentAt));
    // ... and counts down in step with the clock.
    expect(second.remaining).toBeLessThan(first.remaining);
    expect(first.remaining - second.remaining).toBeGreaterThanOrEqual(second.before - first.after);
    expect(first.remaining - second.remaining).toBeLessThanOrEqual(second.after - first.before);
    expect(contexts[0].awsRequestId).toBe(res.headers["x-amzn-requestid"]);
  });

  it("answers 502 when the function runs past its timeout, as a Lambda that timed out", async () => {
    const { port } = await serve(() => new Promise((r) => setTimeout(() => r({ statusCode: 200, body: "late" }), 3_000)), 200);
    const res = await send(port, "GET", "/", []);
    expect(res.status).toBe(502);
  });

  it("sends no signature to a local address", async () => {
    const { port, events } = await serve(async () => ({ statusCode: 200, headers: { "content-type": "application/json" }, body: '{"status":"ok"}' }));
    const run = await knock(["health", "--url", `http://127.0.0.1:${port}`], { env: cliEnv({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "x" }) });
    expect(run.code).toBe(0);
    expect(events[0].headers).not.toHaveProperty("authorization");
    expect(events[0].headers).not.toHaveProperty("x-amz-date");

    const dir = scratchDir("knock-fu-", scratch);
    writeFileSync(join(dir, "b.acsm"), makeAcsm());
    await knock(["convert", "--url", `http://localhost:${port}`, "--out", dir, join(dir, "b.acsm")]);
    expect(events[1].headers).not.toHaveProperty("authorization");
    expect(events[1].isBase64Encoded).toBe(true); // the ACSM media type is not one Lambda passes as text
    expect(Buffer.from(events[1].body!, "base64").toString()).toContain("<fulfillmentToken");
  });
});

describe("function result → HTTP response", () => {
  it("writes statusCode, headers, base64 bodies and cookies back faithfully", async () => {
    const { port } = await serve(async () => ({
      statusCode: 201,
      headers: { "Content-Type": "application/octet-stream", "My-Custom-Header": "Custom Value" },
      body: Buffer.from([9, 8, 7]).toString("base64"),
      isBase64Encoded: true,
      cookies: ["Cookie_1=Value1; Max-Age=78000", "Cookie_2=Value2"],
    }));
    const res = await send(port, "GET", "/", []);
    expect(res.status).toBe(201);
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect(res.headers["my-custom-header"]).toBe("Custom Value");
    expect(res.headers["set-cookie"]).toEqual(["Cookie_1=Value1; Max-Age=78000", "Cookie_2=Value2"]);
    expect([...res.body]).toEqual([9, 8, 7]);
  });

  it("infers a 200 JSON answer when the function returns no statusCode (documented rule)", async () => {
    const { port } = await serve(async () => ({ message: "Hello, world!" }));
    const res = await send(port, "GET", "/", []);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(res.body.toString())).toEqual({ message: "Hello, world!" });
  });
});
