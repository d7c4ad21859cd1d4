// A book, an archive or a web page sent instead of the ACSM, through the real handler with the
// event shapes a Function URL delivers: each is named for what it is (400, `detected`), under every
// label the service reads a body under, while the Content-Type rules (415) stay as they were.
import { describe, expect, it } from "vitest";
import { fakeContext, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();
const handler = () => world.container();

/** The first bytes of each kind of file, as real ones start (a book's binary tail does not matter). */
const FILES: Record<string, Buffer> = {
  PDF: Buffer.concat([Buffer.from("%PDF-1.7\n%"), Buffer.from([0xe2, 0xe3, 0xcf, 0xd3]), Buffer.from("\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")]),
  // A zip local file header (PK\x03\x04 …) whose first entry is EPUB's stored "mimetype" file.
  EPUB: Buffer.concat([
    Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x6f, 0x61, 0xab, 0x2c, 0x14, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00]),
    Buffer.from("mimetypeapplication/epub+zip"),
    Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x08, 0x08, 0x00, 0xff, 0xfe]),
  ]),
  zip: Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00]), Buffer.from("word/document.xml"), Buffer.from([0x8b, 0xff, 0x00])]),
  HTML: Buffer.from('<!DOCTYPE html>\n<html lang="en"><head><title>Your download</title></head><body>Click here</body></html>\n'),
};

const SAID: Record<string, string> = {
  PDF: "This is a PDF, not an ACSM file.",
  EPUB: "This is an EPUB, not an ACSM file.",
  zip: "This is a zip archive, not an ACSM file.",
  HTML: "This is a web page (HTML), not an ACSM file: the download may have saved the shop's page instead of the file.",
};
const NEXT = " Send the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.";

/** A Function URL event for a binary upload: Lambda hands a body it does not treat as text over base64-encoded. */
function upload(file: Buffer, contentType?: string): unknown {
  const event = urlEvent("POST", file.toString("latin1"), { contentType }) as { headers: Record<string, string>; body: string; isBase64Encoded: boolean };
  event.body = file.toString("base64");
  event.isBase64Encoded = true;
  if (contentType === undefined) delete event.headers["content-type"];
  return event;
}

function answerOf(res: { statusCode: number; body: string }): { status: number; body: Record<string, unknown> } {
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
}

describe("a file that is not an ACSM", () => {
  it.each([
    ["a PDF", "PDF"],
    ["an EPUB", "EPUB"],
    ["another zip archive", "zip"],
    ["an HTML page", "HTML"],
  ])("%s is answered 400 naming what it is, in those words, under each accepted label", async (_name, kind) => {
    const handle = handler();
    for (const contentType of ["application/vnd.adobe.adept+xml", "application/octet-stream", "application/xml", undefined]) {
      const { status, body } = answerOf(await handle(upload(FILES[kind], contentType), fakeContext()));
      expect({ contentType, status, error_type: body.error_type, detected: body.detected }).toEqual({ contentType, status: 400, error_type: "BadRequest", detected: kind });
      expect(body.error).toBe(SAID[kind] + NEXT);
      expect(body.request_id).toBeTruthy();
    }
  });

  it("is recognised inside JSON too (acsm_content, as the page sends a chosen file's text)", async () => {
    const handle = handler();
    for (const kind of ["PDF", "HTML"]) {
      const { status, body } = answerOf(await handle(urlEvent("POST", JSON.stringify({ acsm_content: FILES[kind].toString("latin1"), filename: "book" })), fakeContext()));
      expect([status, body.error_type, body.detected, body.error]).toEqual([400, "BadRequest", kind, SAID[kind] + NEXT]);
    }
  });

  it("is no longer called 'neither JSON nor an ACSM file', 'not well-formed XML' or a DOCTYPE refusal", async () => {
    const handle = handler();
    const said = await Promise.all([
      handle(upload(FILES.PDF, "application/json"), fakeContext()),
      handle(upload(FILES.PDF, "application/octet-stream"), fakeContext()),
      handle(upload(FILES.HTML, "text/xml"), fakeContext()),
    ]);
    for (const res of said) expect(String(answerOf(res).body.error)).not.toMatch(/neither JSON|well-formed|DOCTYPE/);
  });

  it("keeps the Content-Type rules: a PDF labelled as one is 415, before its body is read", async () => {
    const handle = handler();
    const res = await handle(upload(FILES.PDF, "application/pdf"), fakeContext());
    expect(answerOf(res)).toMatchObject({ status: 415, body: { error_type: "UnsupportedMediaType", content_type: "application/pdf" } });
  });

  it("keeps the XML parser's own words in xml_error for text that is not XML, beside the message", async () => {
    const handle = handler();
    const res = await handle(upload(Buffer.from('<?xml version="1.0"?>\n<fulfillmentToken xmlns="http://ns.adobe.com/adept">\n</fulfillmentToken> trailing words\n'), "application/vnd.adobe.adept+xml"), fakeContext());
    const { status, body } = answerOf(res);
    expect([status, body.error_type]).toEqual([400, "BadRequest"]);
    expect(body.xml_error).toMatch(/^\d+:\d+: /);
    expect(body.error).toBe(`The ACSM is not well-formed XML (${String(body.xml_error)}).`);
  });
});
