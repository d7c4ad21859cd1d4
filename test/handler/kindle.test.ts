// Send to Kindle through the real handler (issue 20): the local S3 server, the libgourou stand-ins and
// a real SMTP server on 127.0.0.1 (test/support/smtp.ts). A conversion with deliver: "kindle" (or
// ?deliver=kindle) and POST /kindle mail the stored book; the EPUB goes pre-flighted, its download
// untouched; every failure keeps the book's download link; a service without Send to Kindle refuses
// before anything is fulfilled.
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HandlerResult } from "../../lambda/src/answer";
import { createS3Client } from "../../lambda/src/handler";
import { loadConfig, type HandlerConfig } from "../../lambda/src/config";
import { kindlePreflight } from "../../lambda/src/kindle/preflight";
import { TEST_DOCUMENT_TITLE } from "../../lambda/src/kindle/test-document";
import { s3Objects } from "../../lambda/src/object-store";
import { outputStore } from "../../lambda/src/output-store";
import { writeZip } from "../../lambda/src/zip";
import { startSmtpServer, type TestSmtp } from "../support/smtp";
import { OUTPUT_BUCKET, fakeContext, makeAcsm, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();
let smtp: TestSmtp;
beforeAll(async () => {
  smtp = await startSmtpServer({ tls: "implicit" });
});
afterAll(async () => {
  await smtp?.close();
});

const KINDLE = { to: "reader_42@kindle.com", from: "reader@gmail.test", transport: "smtp" as const, smtpParameter: "/knock-lambda/test/kindle-smtp-url" };

/** A container with Send to Kindle set up against the test server (the URL handed over as SSM would). */
function kindleContainer(overrides: Partial<HandlerConfig> = {}) {
  const handle = world.container({
    config: { ...loadConfig(), kindle: KINDLE, ...overrides },
    kindle: { smtpUrl: async () => smtp.url, tls: { ca: smtp.ca }, sleep: async () => undefined },
  });
  return (event: unknown): Promise<HandlerResult> => handle(event, fakeContext());
}

function post(body: unknown, query = "", path = "/"): unknown {
  const event = urlEvent("POST", JSON.stringify(body)) as { rawPath: string; rawQueryString: string; requestContext: { http: { path: string } } };
  event.rawPath = path;
  event.requestContext.http.path = path;
  event.rawQueryString = query;
  return event;
}

interface Answer {
  readonly error?: string;
  readonly error_type?: string;
  readonly kindle: { readonly message: string; readonly message_id: string; readonly preflight_fixes: readonly string[] };
  readonly output_files: readonly { readonly filename: string; readonly s3_key: string; readonly download_url: string }[];
}
const json = (res: HandlerResult) => JSON.parse(res.body) as Answer;

/** A real EPUB 3 stored in the output bucket as a conversion stores it: `converted/<id>/<name>` with the ACSM's title and author. */
async function storedEpub(title: string, author: string, defects: { noLanguage?: boolean } = {}, language?: string): Promise<{ key: string; bytes: Buffer }> {
  const opf = `<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="uid">urn:uuid:${randomUUID()}</dc:identifier><dc:title>${title}</dc:title>${defects.noLanguage ? "" : "<dc:language>en</dc:language>"}<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta></metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/></manifest><spine><itemref idref="nav"/></spine></package>\n`;
  const bytes = await writeZip([
    { name: "mimetype", data: Buffer.from("application/epub+zip"), store: true },
    { name: "META-INF/container.xml", data: Buffer.from('<?xml version="1.0" encoding="UTF-8"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>') },
    { name: "content.opf", data: Buffer.from(opf) },
    { name: "nav.xhtml", data: Buffer.from(`<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>${title}</title></head><body><nav epub:type="toc"><ol><li><a href="nav.xhtml">x</a></li></ol></nav></body></html>`) },
  ]);
  const file = join(mkdtempSync(join(tmpdir(), "knock-kindle-book-")), "book.epub");
  writeFileSync(file, bytes);
  const kept = await outputStore(s3Objects(createS3Client(loadConfig()), OUTPUT_BUCKET)).keep(randomUUID(), `${title}.epub`, file, "application/epub+zip", 600, { title, author, language });
  return { key: kept.key, bytes };
}

describe("Send to Kindle through the handler", () => {
  it("mails a stored EPUB's pre-flighted copy for POST /kindle, named Title - Author, and says it was sent, never delivered", async () => {
    const handle = kindleContainer();
    // The ACSM said fr-CA (kept with the book, as a conversion keeps it); the EPUB has no dc:language.
    const { key, bytes } = await storedEpub("Kindle Book", "Ann Author", { noLanguage: true }, "fr-CA");
    const before = smtp.received.length;
    const res = await handle(post({ s3_key: key }, "", "/kindle"));
    expect(res.statusCode, res.body).toBe(200);
    const body = json(res);
    expect(body.kindle).toMatchObject({ sent: true, to: KINDLE.to, transport: "smtp", attachment_name: "Kindle Book - Ann Author.epub" });
    expect(body.kindle.message).toMatch(/sent to reader_42@kindle\.com; Amazon sends no receipt/);
    expect(body.kindle.message).not.toMatch(/delivered/i);
    expect(body.kindle.preflight_fixes).toEqual(['content.opf: there was no dc:language; it is now "fr-CA"', "nav.xhtml: added an XML declaration with encoding utf-8"]);
    expect(body.output_files[0]).toMatchObject({ s3_key: key, filename: "Kindle Book.epub" });
    const mail = smtp.received[before];
    expect(mail.envelope.to).toEqual([KINDLE.to]);
    const [attachment] = mail.parsed.attachments;
    expect(attachment.filename).toBe("Kindle Book - Ann Author.epub");
    expect(attachment.contentType).toBe("application/epub+zip");
    expect(attachment.content.equals((await kindlePreflight(bytes, { language: "fr-CA" })).bytes)).toBe(true);
    expect(body.kindle.message_id).toBe(mail.parsed.messageId);
    // The download is the stored book, untouched.
    const download = Buffer.from(await (await fetch(body.output_files[0].download_url)).arrayBuffer());
    expect(download.equals(bytes)).toBe(true);
  });

  it("sends a new conversion's book with ?deliver=kindle or deliver: \"kindle\", keeping the download link", async () => {
    const handle = kindleContainer();
    for (const [body, query] of [[{ acsm_content: makeAcsm({ title: "Query PDF", format: "application/pdf" }) }, "deliver=kindle"], [{ acsm_content: makeAcsm({ title: "Field PDF", format: "application/pdf" }), deliver: "kindle" }, ""]] as const) {
      const before = smtp.received.length;
      const res = await handle(post(body, query));
      expect(res.statusCode, res.body).toBe(200);
      const answer = json(res);
      expect(answer.kindle).toMatchObject({ sent: true, attachment_name: `${answer.output_files[0].filename.replace(/\.pdf$/, "")} - Test Author.pdf` });
      expect(answer.output_files[0].download_url).toMatch(/^http/);
      const [attachment] = smtp.received[before].parsed.attachments;
      expect(attachment.contentType).toBe("application/pdf");
      const download = Buffer.from(await (await fetch(answer.output_files[0].download_url)).arrayBuffer());
      expect(attachment.content.equals(download)).toBe(true);
    }
  });

  it("keeps the book's download link in the error when the mail fails (an EPUB the pre-flight cannot read)", async () => {
    const handle = kindleContainer();
    // The stand-in's "EPUB" is its own marker text, not a zip: the pre-flight refuses it.
    const res = await handle(post({ acsm_content: makeAcsm({ title: "Not A Zip" }), deliver: "kindle" }));
    expect(res.statusCode).toBe(422);
    const body = json(res);
    expect(body.error_type).toBe("KindlePreflightFailed");
    expect(body.error).toMatch(/download it from output_files\[0\]\.download_url/);
    expect(body.output_files[0].download_url).toMatch(/^http/);
    expect((await fetch(body.output_files[0].download_url)).status).toBe(200);
  });

  it("answers a sign-in the server refuses with KindleMailSignInRefused and the link, never the password", async () => {
    const handle = world.container({
      config: { ...loadConfig(), kindle: KINDLE },
      kindle: { smtpUrl: async () => smtp.url.replace(encodeURIComponent(smtp.password), "wrong-password"), tls: { ca: smtp.ca } },
    });
    const res = await handle(post({ acsm_content: makeAcsm({ title: "Refused", format: "application/pdf" }), deliver: "kindle" }), fakeContext());
    expect(res.statusCode).toBe(502);
    const body = json(res);
    expect(body.error_type).toBe("KindleMailSignInRefused");
    expect(body.output_files).toHaveLength(1);
    expect(res.body).not.toContain("wrong-password");
  });

  it("sends the test document for POST /kindle {\"test\": true}", async () => {
    const before = smtp.received.length;
    const res = await kindleContainer()(post({ test: true }, "", "/kindle"));
    expect(res.statusCode, res.body).toBe(200);
    expect(json(res).kindle).toMatchObject({ sent: true, attachment_name: `${TEST_DOCUMENT_TITLE} - knock-lambda.epub`, preflight_fixes: [] });
    expect(json(res).output_files).toEqual([]);
    expect(smtp.received[before].parsed.attachments[0].filename).toBe(`${TEST_DOCUMENT_TITLE} - knock-lambda.epub`);
  });

  it("answers 404 NoSuchBook for a key the bucket does not hold, and 400 naming what POST /kindle takes", async () => {
    const handle = kindleContainer();
    const gone = await handle(post({ s3_key: `converted/${randomUUID()}/Gone.epub` }, "", "/kindle"));
    expect(gone.statusCode).toBe(404);
    expect(json(gone).error_type).toBe("NoSuchBook");
    const crafted = await handle(post({ s3_key: "adept/device.json" }, "", "/kindle"));
    expect(json(crafted).error_type).toBe("NoSuchBook");
    const empty = await handle(post({}, "", "/kindle"));
    expect(empty.statusCode).toBe(400);
    expect(json(empty).error).toMatch(/\{"s3_key": "converted\/…"\}.*\{"test": true\}/);
  });

  it("writes nothing of the SMTP URL's password into the function's log", () => {
    expect(world.logs.length).toBeGreaterThan(10);
    expect(world.logs.some((l) => l.includes("book sent to the Kindle"))).toBe(true);
    const all = world.logs.join("\n");
    expect(all).not.toContain(smtp.password);
    expect(all).not.toContain(encodeURIComponent(smtp.password));
    expect(all).not.toContain("wrong-password");
  });

  it("refuses deliver: \"kindle\" on a service without Send to Kindle before fulfilling anything, and an unknown deliver value", async () => {
    const handle = world.container();
    const fulfilments = world.distributor.hits.length;
    const res = await handle(post({ acsm_content: makeAcsm(), deliver: "kindle" }), fakeContext());
    expect(res.statusCode).toBe(400);
    expect(json(res).error_type).toBe("KindleNotConfigured");
    expect(world.distributor.hits.length).toBe(fulfilments);
    const unknown = await handle(post({ acsm_content: makeAcsm(), deliver: "kobo" }), fakeContext());
    expect(unknown.statusCode).toBe(400);
    expect(json(unknown).error).toBe('"deliver" is "kobo"; it may be "kindle" (send the book to the Kindle), or left out.');
    expect((await handle(post({ test: true }, "", "/kindle"), fakeContext())).statusCode).toBe(400);
  });
});
