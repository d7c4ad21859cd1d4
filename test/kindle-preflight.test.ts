// The Kindle pre-flight (lambda/src/kindle/preflight.ts) on EPUBs that each carry one defect Amazon's
// Send to Kindle refuses with E999: each comes out fixed, everything else byte for byte as it was,
// `mimetype` first and stored; and EPUBCheck's TypeScript port (@likecoin/epubcheck-ts, measured by
// its authors against EPUBCheck 5.4) reports no error on the result that the input did not have.
import { EpubCheck } from "@likecoin/epubcheck-ts";
import { describe, expect, it } from "vitest";
import { isLanguageTag, kindlePreflight, KindlePreflightFailedError } from "../lambda/src/kindle/preflight";
import { testDocument } from "../lambda/src/kindle/test-document";
import { readZip, writeZip } from "../lambda/src/zip";

const LIMITS = { maxArchiveBytes: 10_000_000, maxEntries: 100, maxEntryBytes: 10_000_000, maxTotalBytes: 10_000_000 };

const CONTAINER = '<?xml version="1.0" encoding="UTF-8"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>\n';

interface Book {
  readonly metadata?: string;
  readonly chapter?: string;
  readonly chapter2?: string;
  readonly nav?: string;
}

function xhtml(title: string, body: string, bodyAttrs = ""): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="fr"><head><title>${title}</title></head><body${bodyAttrs}>${body}</body></html>\n`;
}

/** An EPUB 3 with two chapters and an image; `book` replaces parts of it (one defect each). */
async function epub(book: Book = {}): Promise<Buffer> {
  const metadata = book.metadata ?? '<dc:identifier id="uid">urn:uuid:0d5b3c4e-1111-4a2b-9c3d-aaaaaaaaaaaa</dc:identifier><dc:title>Les Misérables</dc:title><dc:language>fr</dc:language><meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>';
  const opf = `<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">${metadata}</metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/><item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/><item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/><item id="img" href="cover.png" media-type="image/png"/></manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>\n`;
  const nav = book.nav ?? xhtml("Table", '<nav epub:type="toc"><ol><li><a href="text/c1.xhtml">Un</a></li><li><a href="text/c2.xhtml">Deux</a></li></ol></nav>');
  const chapter = book.chapter ?? xhtml("Un", '<h1>Un</h1><p>Été <img src="../cover.png" alt="couverture"/></p>');
  const chapter2 = book.chapter2 ?? xhtml("Deux", '<h1>Deux</h1><p><a href="c1.xhtml">retour</a></p>');
  return writeZip([
    { name: "mimetype", data: Buffer.from("application/epub+zip"), store: true },
    { name: "META-INF/container.xml", data: Buffer.from(CONTAINER) },
    { name: "OEBPS/content.opf", data: Buffer.from(opf) },
    { name: "OEBPS/nav.xhtml", data: Buffer.from(nav) },
    { name: "OEBPS/text/c1.xhtml", data: Buffer.from(chapter) },
    { name: "OEBPS/text/c2.xhtml", data: Buffer.from(chapter2) },
    // A 1×1 PNG.
    { name: "OEBPS/cover.png", data: Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==", "base64") },
  ]);
}

async function entries(zip: Buffer): Promise<Map<string, Buffer>> {
  return new Map((await readZip(zip, LIMITS)).map((e) => [e.name, e.data]));
}

/** EPUBCheck's errors (fatal and error severity), as `ID path` lines. */
async function checkErrors(zip: Buffer): Promise<string[]> {
  const result = await EpubCheck.validate(new Uint8Array(zip));
  return result.messages.filter((m) => ["fatal", "error"].includes(String(m.severity).toLowerCase())).map((m) => `${m.id} ${m.location?.path ?? ""}`);
}

/** Runs the pre-flight and checks what every result must hold: mimetype first and stored, untouched entries identical, no new EPUBCheck error. */
async function preflighted(input: Buffer, changed: string[], options: { language?: string } = {}) {
  const result = await kindlePreflight(input, options);
  const raw = result.bytes;
  // OCF (EPUB 3.3 §4.1.2): the first local file header is "mimetype", method 0 (stored), no extra field.
  expect(raw.readUInt32LE(0)).toBe(0x04034b50);
  expect(raw.readUInt16LE(8)).toBe(0);
  expect(raw.subarray(30, 30 + raw.readUInt16LE(26)).toString()).toBe("mimetype");
  expect(raw.readUInt16LE(28)).toBe(0);
  const before = await entries(input);
  const after = await entries(raw);
  expect([...after.keys()]).toEqual([...before.keys()]);
  for (const [name, data] of before) if (!changed.includes(name)) expect(after.get(name)?.equals(data), name).toBe(true);
  const errorsBefore = new Set(await checkErrors(input));
  expect((await checkErrors(raw)).filter((e) => !errorsBefore.has(e))).toEqual([]);
  return { result, after, text: (name: string) => after.get(name)!.toString("utf8") };
}

describe("the Kindle pre-flight", () => {
  it("leaves a clean EPUB as it is: no fixes, the same bytes, and EPUBCheck finds no error in it", async () => {
    const clean = await epub();
    expect(await checkErrors(clean)).toEqual([]);
    const result = await kindlePreflight(clean);
    expect(result.fixes).toEqual([]);
    expect(result.bytes.equals(clean)).toBe(true);
  }, 60_000);

  it("adds an XML declaration with UTF-8 where there is none, and makes another encoding UTF-8", async () => {
    const noDecl = xhtml("Un", "<p>Été</p>").replace(/^<\?xml[^>]*\?>\n/, "");
    const latin = xhtml("Deux", "<p>Noël</p>").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"');
    const { result, text } = await preflighted(await epub({ chapter: noDecl, chapter2: latin }), ["OEBPS/text/c1.xhtml", "OEBPS/text/c2.xhtml"]);
    expect(text("OEBPS/text/c1.xhtml")).toBe(`<?xml version="1.0" encoding="utf-8"?>\n${noDecl}`);
    expect(text("OEBPS/text/c2.xhtml")).toBe(latin.replace('encoding="ISO-8859-1"', 'encoding="utf-8"'));
    expect(result.fixes.map((f) => [f.file, f.fix])).toEqual([["OEBPS/text/c1.xhtml", "xml-declaration"], ["OEBPS/text/c2.xhtml", "xml-declaration"]]);
  }, 60_000);

  it("sets dc:language from the ACSM when it is missing, und without one, and replaces one that is no language tag", async () => {
    const noLanguage = '<dc:identifier id="uid">urn:uuid:0d5b3c4e-1111-4a2b-9c3d-aaaaaaaaaaaa</dc:identifier><dc:title>T</dc:title><meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>';
    // The checker itself sees the defect (EPUB 3.3 §5.5.3.3 requires a dc:language): it checks for real.
    expect((await checkErrors(await epub({ metadata: noLanguage }))).length).toBeGreaterThan(0);
    const fromAcsm = await preflighted(await epub({ metadata: noLanguage }), ["OEBPS/content.opf"], { language: "fr-CA" });
    expect(fromAcsm.text("OEBPS/content.opf")).toContain("<dc:language>fr-CA</dc:language>\n</metadata>");
    const und = await preflighted(await epub({ metadata: noLanguage }), ["OEBPS/content.opf"], { language: "French!" });
    expect(und.text("OEBPS/content.opf")).toContain("<dc:language>und</dc:language>");
    const invalid = noLanguage + "<dc:language>English (UK)</dc:language>";
    const fixed = await preflighted(await epub({ metadata: invalid }), ["OEBPS/content.opf"]);
    expect(fixed.text("OEBPS/content.opf")).toContain("<dc:language>und</dc:language>");
    expect(fixed.result.fixes).toEqual([{ file: "OEBPS/content.opf", fix: "language", detail: 'dc:language was "English (UK)", not a language tag; it is now "und"' }]);
  }, 60_000);

  it("points links to a <body> id at the file instead, in the nav and in other chapters, and leaves other fragments", async () => {
    const chapter = xhtml("Un", '<h1 id="h">Un</h1><p>Été</p>', ' id="start"');
    const nav = xhtml("Table", '<nav epub:type="toc"><ol><li><a href="text/c1.xhtml#start">Un</a></li><li><a href="text/c1.xhtml#h">Titre</a></li><li><a href="text/c2.xhtml">Deux</a></li></ol></nav>');
    const chapter2 = xhtml("Deux", '<p><a href="c1.xhtml#start">retour</a> <a href="c1.xhtml#h">titre</a></p>');
    const { result, text } = await preflighted(await epub({ chapter, nav, chapter2 }), ["OEBPS/nav.xhtml", "OEBPS/text/c2.xhtml"]);
    expect(text("OEBPS/nav.xhtml")).toContain('<a href="text/c1.xhtml">Un</a></li><li><a href="text/c1.xhtml#h">Titre</a>');
    expect(text("OEBPS/text/c2.xhtml")).toContain('<a href="c1.xhtml">retour</a> <a href="c1.xhtml#h">titre</a>');
    expect(result.fixes.map((f) => f.fix)).toEqual(["body-id-link", "body-id-link"]);
  }, 60_000);

  it("removes <img> elements without src, and keeps those with one", async () => {
    const chapter = xhtml("Un", '<p>Été <img alt="rien"/><img src="../cover.png" alt="couverture"/><img class="x" srcset="a.png 2x" alt=""></img></p>');
    const { result, text } = await preflighted(await epub({ chapter }), ["OEBPS/text/c1.xhtml"]);
    expect(text("OEBPS/text/c1.xhtml")).toContain('<p>Été <img src="../cover.png" alt="couverture"/></p>');
    expect(result.fixes).toEqual([{ file: "OEBPS/text/c1.xhtml", fix: "img-without-src", detail: "removed 2 <img> without src" }]);
  }, 60_000);

  it("keeps only the first of several dc:titles when none is refined as main, and leaves a refined main alone", async () => {
    const base = '<dc:identifier id="uid">urn:uuid:0d5b3c4e-1111-4a2b-9c3d-aaaaaaaaaaaa</dc:identifier><dc:language>fr</dc:language><meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>';
    const two = `<dc:title>Les Misérables</dc:title><dc:title>Tome I</dc:title>${base}`;
    const { result, text } = await preflighted(await epub({ metadata: two }), ["OEBPS/content.opf"]);
    expect(text("OEBPS/content.opf")).toContain("<dc:title>Les Misérables</dc:title><dc:identifier");
    expect(text("OEBPS/content.opf")).not.toContain("Tome I");
    expect(result.fixes.map((f) => f.fix)).toEqual(["main-title"]);
    const refined = `<dc:title id="t2">Tome I</dc:title><dc:title id="t1">Les Misérables</dc:title><meta refines="#t1" property="title-type">main</meta>${base}`;
    const kept = await kindlePreflight(await epub({ metadata: refined }));
    expect(kept.fixes).toEqual([]);
  }, 60_000);

  it("refuses what is not an EPUB, naming the problem", async () => {
    await expect(kindlePreflight(Buffer.from("%PDF-1.7"))).rejects.toBeInstanceOf(KindlePreflightFailedError);
    const noMimetype = await writeZip([{ name: "META-INF/container.xml", data: Buffer.from(CONTAINER) }]);
    await expect(kindlePreflight(noMimetype)).rejects.toThrow(/no "mimetype" entry/);
    const noContainer = await writeZip([{ name: "mimetype", data: Buffer.from("application/epub+zip"), store: true }]);
    await expect(kindlePreflight(noContainer)).rejects.toThrow(/no META-INF\/container.xml/);
  });

  it("reads language tags as RFC 5646 §2.1 writes them", () => {
    for (const tag of ["en", "fr-CA", "zh-Hant-TW", "sr-Latn", "es-419", "de-CH-1996", "und", "x-private"]) expect(isLanguageTag(tag), tag).toBe(true);
    for (const tag of ["", "English (UK)", "en_US", "e", "fr-", "12", "français"]) expect(isLanguageTag(tag), tag).toBe(false);
  });

  it("finds nothing to fix in the test document knock kindle test sends, which EPUBCheck accepts", async () => {
    const doc = await testDocument(new Date("2026-12-04T00:00:00Z"));
    expect(await checkErrors(doc)).toEqual([]);
    expect((await kindlePreflight(doc)).fixes).toEqual([]);
  }, 60_000);
});
