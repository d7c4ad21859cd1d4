// The body's Content-Type is honoured (issue 16): the raw ACSM file under an ACSM or XML type, JSON
// under application/json, either with no Content-Type at all (direct invocations' events, callers
// from before the rule); anything else — above all the three types a page on another site may send
// without a CORS preflight — is 415 before the body is even decoded. The real handler, a real
// S3-protocol server on 127.0.0.1, the libgourou stand-ins; Function URL events as requests make them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createHandler } from "../../lambda/src/handler";
import { bodyForm } from "../../lambda/src/request";
import { UnsupportedMediaTypeError } from "../../lambda/src/errors";
import { fakeContext, makeAcsm } from "./harness";
import { handlerWorld } from "./world";
import { functionUrlEvent } from "./browser-events";

const world = handlerWorld();

/** One warm container of the real handler for the whole file. */
let handle: ReturnType<typeof createHandler> | undefined;
function service(): ReturnType<typeof createHandler> {
  handle ??= world.container();
  return handle;
}

function body(res: { body: string }): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** POSTs `payload` with this Content-Type (or none); `base64` as the Function URL does for binary types. */
function post(contentType: string | undefined, payload: string, base64 = false) {
  return service()(functionUrlEvent({ method: "POST", headers: contentType === undefined ? {} : { "content-type": contentType }, body: payload, base64 }), fakeContext());
}

const bookOf = (res: { body: string }): string => (body(res).output_files as { filename: string }[])[0].filename;

describe("the raw ACSM file", () => {
  it.each([
    ["application/vnd.adobe.adept+xml", true], // what knock convert sends for a file; Lambda base64-encodes it
    ["application/vnd.adobe.adept+xml", false],
    ["application/xml", false],
    ["application/xml; charset=utf-8", false],
    ["text/xml", false],
    ["Text/XML; Charset=UTF-8", false],
    ["application/octet-stream", true],
    ["APPLICATION/OCTET-STREAM", true],
  ])("converts under %s (base64 %s)", async (contentType, base64) => {
    const res = await post(contentType, makeAcsm({ title: `Raw ${contentType.slice(0, 16).replace(/\W/g, " ").trim()}` }), base64);
    expect(res.statusCode).toBe(200);
    expect(bookOf(res)).toMatch(/^Raw .*\.epub$/);
  });

  it("converts the sample ACSM posted with the curl flag the docs give", async () => {
    const sample = readFileSync(join(__dirname, "../fixtures/libgourou/sample-book.acsm"), "utf8");
    const res = await post("application/vnd.adobe.adept+xml", sample, true);
    expect(res.statusCode).toBe(200);
    expect(bookOf(res)).toBe("Les Misérables.epub");
  });

  it("answers 400 with the one hint needed for JSON sent under a file's type, without reading it as JSON", async () => {
    const res = await post("application/octet-stream", JSON.stringify({ acsm_url: "https://shop.example.test/loan.acsm" }), true);
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toBe("The body is JSON, but its Content-Type says it is the ACSM file: send JSON with Content-Type: application/json.");
    expect(world.logs.some((l) => l.includes("conversion requested") && l.includes('"source":"url"'))).toBe(false);
  });

  it("hands other text under an ACSM type to the token check, which answers 400", async () => {
    const res = await post("application/vnd.adobe.adept+xml", "hello there");
    expect(res.statusCode).toBe(400);
    expect(body(res).error).toMatch(/^The ACSM is not well-formed XML/);
  });
});

describe("JSON", () => {
  it.each(["application/json", "application/json; charset=UTF-8", "Application/JSON"])("converts JSON acsm_content under %s (what the page and knock --url send)", async (contentType) => {
    const res = await post(contentType, JSON.stringify({ acsm_content: makeAcsm({ title: "As JSON" }), filename: "order.acsm" }));
    expect(res.statusCode).toBe(200);
    expect(body(res).source_acsm_filename).toBe("order.acsm");
  });
});

describe("no Content-Type at all keeps the body sniffing", () => {
  it("converts a raw ACSM and JSON alike, plain or base64", async () => {
    for (const [payload, base64] of [[makeAcsm({ title: "Unlabelled" }), true], [JSON.stringify({ acsm_content: makeAcsm({ title: "Unlabelled JSON" }) }), false]] as const) {
      const res = await post(undefined, payload, base64);
      expect(res.statusCode).toBe(200);
    }
  });

  it("treats an empty Content-Type as none", async () => {
    expect((await post("", makeAcsm())).statusCode).toBe(200);
  });
});

describe("other content types are 415", () => {
  it.each([
    ["text/plain", false],
    ["text/plain;charset=UTF-8", false], // a fetch() of a string body
    ["application/x-www-form-urlencoded", true], // curl --data-binary @book.acsm, and an HTML form
    ["multipart/form-data; boundary=----x", true],
    ["text/html", false],
    ["application/json, text/plain", false], // two labels joined by payload 2.0
    ["image/png", true],
  ])("%s", async (contentType, base64) => {
    const before = world.logs.length;
    const res = await post(contentType, makeAcsm(), base64);
    expect(res.statusCode).toBe(415);
    expect(res.headers["accept-post"]).toBe("application/vnd.adobe.adept+xml, application/xml, text/xml, application/octet-stream, application/json");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(body(res)).toMatchObject({
      error_type: "UnsupportedMediaType",
      content_type: contentType,
      accepted_content_types: ["application/vnd.adobe.adept+xml", "application/xml", "text/xml", "application/octet-stream", "application/json"],
    });
    expect(world.logs.slice(before).some((l) => l.includes("conversion requested"))).toBe(false);
  });

  it("names what is accepted and the curl flag for a raw file", async () => {
    const res = await post("application/x-www-form-urlencoded", makeAcsm(), true);
    expect(body(res).error).toBe(
      "Content-Type application/x-www-form-urlencoded is not accepted for a conversion. Send the ACSM file as application/vnd.adobe.adept+xml " +
        "(or application/xml, text/xml, application/octet-stream) — with curl: -H 'Content-Type: application/vnd.adobe.adept+xml' --data-binary @book.acsm — " +
        'or JSON {"acsm_content": "<xml…>"} or {"acsm_url": "https://…"} as application/json.',
    );
  });

  it("refuses before decoding the body: an oversized text/plain body is 415, not 413", async () => {
    const big = makeAcsm().replace("<hmac>", `<!-- ${"x".repeat(300 * 1024)} --><hmac>`);
    expect((await post("text/plain", big)).statusCode).toBe(415);
    expect((await post("application/xml", big)).statusCode).toBe(413);
  });

  it("applies to conversions only: the loan routes take no body", async () => {
    const res = await service()(functionUrlEvent({ method: "GET", path: "/loans", headers: { "content-type": "text/plain" } }), fakeContext());
    expect(res.statusCode).toBe(200);
  });

  it("echoes at most 200 characters of the caller's Content-Type", () => {
    const long = `text/${"x".repeat(300)}`;
    expect(() => bodyForm(long)).toThrow(UnsupportedMediaTypeError);
    try {
      bodyForm(long);
    } catch (err) {
      expect((err as UnsupportedMediaTypeError).details.content_type).toBe(`${long.slice(0, 200)}…`);
    }
  });
});

describe("direct invocation (the event is the JSON request) is untouched", () => {
  it("converts", async () => {
    const res = await service()({ acsm_content: makeAcsm({ title: "Direct" }) }, fakeContext());
    expect(res.statusCode).toBe(200);
    expect(bookOf(res)).toBe("Direct.epub");
  });
});
