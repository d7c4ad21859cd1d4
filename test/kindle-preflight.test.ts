// The Kindle pre-flight (lambda/src/kindle/preflight.ts) on EPUBs that each carry one defect Amazon's
// Send to Kindle refuses with E999: each comes out fixed, everything else byte for byte as it was,
// `mimetype` first and stored; and EPUBCheck's TypeScript port (@likecoin/epubcheck-ts, measured by
// its authors against EPUBCheck 5.4) reports no error on the result that the input did not have.
import { EpubCheck } from "@likecoin/epubcheck-ts";
import { describe, expect, it } from "vitest";
import { isLanguageTag, kindlePreflight, KindlePreflightFailedError } from "../lambda/src/kindle/preflight";
import { testDocument } from "../lambda/src/kindle/test-document";
import { readZip, writeZip, type ZipWriteEntry } from "../lambda/src/zip";

const LIMITS = { maxArchiveBytes: 10_000_000, maxEntries: 100, maxEntryBytes: 10_000_000, maxTotalBytes: 10_000_000 };

const CONTAINER = '<?xml version="1.0" encoding="UTF-8"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>\n';

interface Book {
  readonly metadata?: string;
  readonly chapter?: string;
  readonly chapter2?: string;
  /** The navigation document; "" leaves it out (an EPUB 2 has an NCX instead). */
  readonly nav?: string;
  /** Replaces the whole package document. */
  readonly opf?: string;
  /** Entries added after the others (an NCX, a file in another encoding). */
  readonly extra?: readonly ZipWriteEntry[];
  /** How the zip holds `mimetype`: first and stored unless told. */
  readonly mimetype?: { readonly first?: boolean; readonly store?: boolean };
}

function xhtml(title: string, body: string, bodyAttrs = ""): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="fr"><head><title>${title}</title></head><body${bodyAttrs}>${body}</body></html>\n`;
}

const IDENTIFIER = '<dc:identifier id="uid">urn:uuid:0d5b3c4e-1111-4a2b-9c3d-aaaaaaaaaaaa</dc:identifier>';
const MODIFIED = '<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>';

/** An EPUB 3 with two chapters and an image; `book` replaces parts of it (one defect each). */
async function epub(book: Book = {}): Promise<Buffer> {
  const metadata = book.metadata ?? `${IDENTIFIER}<dc:title>Les Misérables</dc:title><dc:language>fr</dc:language>${MODIFIED}`;
  const opf = book.opf ?? `<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">${metadata}</metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/><item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/><item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/><item id="img" href="cover.png" media-type="image/png"/></manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>\n`;
  const nav = book.nav ?? xhtml("Table", '<nav epub:type="toc"><ol><li><a href="text/c1.xhtml">Un</a></li><li><a href="text/c2.xhtml">Deux</a></li></ol></nav>');
  const chapter = book.chapter ?? xhtml("Un", '<h1>Un</h1><p>Été <img src="../cover.png" alt="couverture"/></p>');
  const chapter2 = book.chapter2 ?? xhtml("Deux", '<h1>Deux</h1><p><a href="c1.xhtml">retour</a></p>');
  const mimetype: ZipWriteEntry = { name: "mimetype", data: Buffer.from("application/epub+zip"), store: book.mimetype?.store ?? true };
  const rest: ZipWriteEntry[] = [
    { name: "META-INF/container.xml", data: Buffer.from(CONTAINER) },
    { name: "OEBPS/content.opf", data: Buffer.from(opf) },
    ...(nav === "" ? [] : [{ name: "OEBPS/nav.xhtml", data: Buffer.from(nav) }]),
    { name: "OEBPS/text/c1.xhtml", data: Buffer.from(chapter) },
    { name: "OEBPS/text/c2.xhtml", data: Buffer.from(chapter2) },
    // A 1×1 PNG.
    { name: "OEBPS/cover.png", data: Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==", "base64") },
    ...(book.extra ?? []),
  ];
  return writeZip(book.mimetype?.first === false ? [...rest.slice(0, 2), mimetype, ...rest.slice(2)] : [mimetype, ...rest]);
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
  const original = Buffer.from(input);
  const result = await kindlePreflight(input, options);
  // A copy is fixed: the book kept for download is not touched.
  expect(input.equals(original)).toBe(true);
  const raw = result.bytes;
  // OCF (EPUB 3.3 §4.1.2): the first local file header is "mimetype", method 0 (stored), no extra field.
  expect(raw.readUInt32LE(0)).toBe(0x04034b50);
  expect(raw.readUInt16LE(8)).toBe(0);
  expect(raw.subarray(30, 30 + raw.readUInt16LE(26)).toString()).toBe("mimetype");
  expect(raw.readUInt16LE(28)).toBe(0);
  // Neither encrypted (bit 0) nor sized by a data descriptor after the data (bit 3): APPNOTE.TXT 6.3 §4.4.4.
  expect(raw.readUInt16LE(6) & 0x9).toBe(0);
  expect(raw.subarray(30 + 8, 30 + 8 + 20).toString()).toBe("application/epub+zip");
  const before = await entries(input);
  const after = await entries(raw);
  expect([...after.keys()]).toEqual(["mimetype", ...[...before.keys()].filter((name) => name !== "mimetype")]);
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

/** An NCX (EPUB 2's table of contents) linking the first chapter's `<body>` id, as converters write it. */
const NCX = `<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head><meta name="dtb:uid" content="urn:uuid:0d5b3c4e-1111-4a2b-9c3d-aaaaaaaaaaaa"/></head><docTitle><text>Les Misérables</text></docTitle><navMap><navPoint id="p1" playOrder="1"><navLabel><text>Un</text></navLabel><content src="text/c1.xhtml#start"/></navPoint><navPoint id="p2" playOrder="2"><navLabel><text>Deux</text></navLabel><content src="text/c2.xhtml#deux"/></navPoint></navMap></ncx>
`;

describe("the Kindle pre-flight on what converters really write", () => {
  it("puts a missing encoding after the version (XML 1.0 §2.8's order), keeps a BOM, drops white space before a declaration, and reads <?xml-stylesheet?> as no declaration", async () => {
    const standalone = xhtml("Un", "<p>Été</p>").replace('<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0' standalone='yes'?>");
    const stylesheet = "\uFEFF" + xhtml("Deux", "<p>Noël</p>").replace(/^<\?xml[^>]*\?>\n/, '<?xml-stylesheet href="s.css" type="text/css"?>\n');
    // XML 1.0 §2.8: nothing but a BOM may come before the declaration; a parser refuses the file.
    const nav = "\n  " + xhtml("Table", '<nav epub:type="toc"><ol><li><a href="text/c1.xhtml">Un</a></li></ol></nav>');
    const { result, text } = await preflighted(await epub({ chapter: standalone, chapter2: stylesheet, nav }), ["OEBPS/nav.xhtml", "OEBPS/text/c1.xhtml", "OEBPS/text/c2.xhtml"]);
    expect(text("OEBPS/nav.xhtml")).toBe(nav.trimStart());
    expect(text("OEBPS/text/c1.xhtml")).toBe(standalone.replace("<?xml version='1.0' standalone='yes'?>", "<?xml version='1.0' encoding=\"utf-8\" standalone='yes'?>"));
    expect(text("OEBPS/text/c2.xhtml")).toBe(`\uFEFF<?xml version="1.0" encoding="utf-8"?>\n${stylesheet.slice(1)}`);
    expect(result.fixes).toEqual([
      { file: "OEBPS/nav.xhtml", fix: "xml-declaration", detail: "removed the white space before the XML declaration, which XML does not allow" },
      { file: "OEBPS/text/c1.xhtml", fix: "xml-declaration", detail: "the XML declaration said no encoding; it now says utf-8 (the bytes are UTF-8)" },
      { file: "OEBPS/text/c2.xhtml", fix: "xml-declaration", detail: "added an XML declaration with encoding utf-8" },
    ]);
  }, 60_000);

  it("leaves a file that is not UTF-8 byte for byte as it was, and lists it as skipped", async () => {
    // ISO-8859-1 bytes: "Noël" with ë as the single byte 0xEB, which is no UTF-8.
    const latin1 = Buffer.from(xhtml("Annexe", "<p>Noël</p>").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"'), "latin1");
    const input = await epub({ chapter2: xhtml("Deux", "<p>Deux</p>").replace(/^<\?xml[^>]*\?>\n/, ""), extra: [{ name: "OEBPS/text/annexe.xhtml", data: latin1 }] });
    const { result, after } = await preflighted(input, ["OEBPS/text/c2.xhtml"]);
    expect(after.get("OEBPS/text/annexe.xhtml")?.equals(latin1)).toBe(true);
    expect(result.fixes.map((f) => f.file)).toEqual(["OEBPS/text/c2.xhtml"]);
    expect(result.skipped).toEqual([{ file: "OEBPS/text/annexe.xhtml", reason: "not UTF-8: left as it was, no fix applied to it" }]);
  }, 60_000);

  it("replaces an empty <dc:language/>, and drops an invalid dc:language when a valid one is there", async () => {
    const empty = await preflighted(await epub({ metadata: `${IDENTIFIER}<dc:title>T</dc:title><dc:language/>${MODIFIED}` }), ["OEBPS/content.opf"], { language: "fr" });
    expect(empty.text("OEBPS/content.opf")).toContain("<dc:title>T</dc:title><dc:language>fr</dc:language><meta");
    expect(empty.text("OEBPS/content.opf").match(/dc:language/g)).toHaveLength(2);
    const two = await preflighted(await epub({ metadata: `${IDENTIFIER}<dc:title>T</dc:title><dc:language>Français</dc:language>\n<dc:language>fr</dc:language>${MODIFIED}` }), ["OEBPS/content.opf"]);
    expect(two.text("OEBPS/content.opf")).toContain("<dc:title>T</dc:title><dc:language>fr</dc:language><meta");
    expect(two.result.fixes).toEqual([{ file: "OEBPS/content.opf", fix: "language", detail: 'removed dc:language "Français", not a language tag (the book also says "fr")' }]);
  }, 60_000);

  it("sees a main title refined with its attributes in any order, and removes the refinements of the titles it drops", async () => {
    const reversed = `<dc:title id="t2">Tome I</dc:title><dc:title id="t1">Les Misérables</dc:title><meta property="title-type" refines="#t1">main</meta><dc:language>fr</dc:language>${IDENTIFIER}${MODIFIED}`;
    expect((await kindlePreflight(await epub({ metadata: reversed }))).fixes).toEqual([]);
    const refined = `<dc:title id="t1">Les Misérables</dc:title>\n<dc:title id="t2">Tome I</dc:title>\n<meta refines="#t2" property="title-type">subtitle</meta>\n<meta refines="#t2" property="display-seq">2</meta>\n<dc:language>fr</dc:language>${IDENTIFIER}${MODIFIED}`;
    const { result, text } = await preflighted(await epub({ metadata: refined }), ["OEBPS/content.opf"]);
    expect(text("OEBPS/content.opf")).toContain(`<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title id="t1">Les Misérables</dc:title>\n<dc:language>fr</dc:language>${IDENTIFIER}`);
    expect(result.fixes).toEqual([
      { file: "OEBPS/content.opf", fix: "main-title", detail: '2 dc:title elements and none marked main: kept the first ("Les Misérables"), removed 1 and the 2 <meta refines> describing them' },
    ]);
  }, 60_000);

  it("points an NCX's <content src> at the chapter instead of its <body> id (EPUB 2)", async () => {
    // EPUB 2 content documents are XHTML 1.1, which has no `<!DOCTYPE html>`.
    const chapter = xhtml("Un", "<p>Été</p>", ' id="start"').replace("<!DOCTYPE html>\n", "");
    const chapter2 = xhtml("Deux", '<h1 id="deux">Deux</h1>').replace("<!DOCTYPE html>\n", "");
    const opf = `<?xml version="1.0" encoding="UTF-8"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">${IDENTIFIER}<dc:title>Les Misérables</dc:title><dc:language>fr</dc:language></metadata><manifest><item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/><item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/><item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/><item id="img" href="cover.png" media-type="image/png"/></manifest><spine toc="ncx"><itemref idref="c1"/><itemref idref="c2"/></spine><guide><reference type="text" title="Début" href="text/c1.xhtml#start"/></guide></package>\n`;
    const input = await epub({ opf, chapter, chapter2, nav: "", extra: [{ name: "OEBPS/toc.ncx", data: Buffer.from(NCX) }] });
    const { result, text } = await preflighted(input, ["OEBPS/content.opf", "OEBPS/toc.ncx"]);
    expect(await checkErrors(result.bytes)).toEqual([]);
    expect(text("OEBPS/toc.ncx")).toBe(NCX.replace('src="text/c1.xhtml#start"', 'src="text/c1.xhtml"'));
    expect(text("OEBPS/content.opf")).toBe(opf.replace('href="text/c1.xhtml#start"', 'href="text/c1.xhtml"'));
    expect(result.fixes.filter((f) => f.fix === "body-id-link").map((f) => f.file)).toEqual(["OEBPS/content.opf", "OEBPS/toc.ncx"]);
  }, 60_000);

  it("moves mimetype first and stores it, as OCF requires, when the converter did not", async () => {
    for (const layout of [{ first: false }, { store: false }]) {
      const input = await epub({ mimetype: layout });
      expect((await checkErrors(input)).length, JSON.stringify(layout)).toBeGreaterThan(0);
      const { result } = await preflighted(input, []);
      expect(result.fixes.map((f) => [f.file, f.fix])).toEqual([["mimetype", "mimetype"]]);
      expect(await checkErrors(result.bytes)).toEqual([]);
    }
  }, 60_000);

  it("reads <img> attributes as attributes: src inside another value is no src, a > inside a value ends no tag", async () => {
    const chapter = xhtml("Un", '<p>Été <img alt="src=x.png" title="a > b"/><img title="1 > 0" src="../cover.png" alt="couverture"/></p>');
    const { result, text } = await preflighted(await epub({ chapter }), ["OEBPS/text/c1.xhtml"]);
    expect(text("OEBPS/text/c1.xhtml")).toContain('<p>Été <img title="1 > 0" src="../cover.png" alt="couverture"/></p>');
    expect(result.fixes).toEqual([{ file: "OEBPS/text/c1.xhtml", fix: "img-without-src", detail: "removed 1 <img> without src" }]);
  }, 60_000);

  it("refuses a damaged zip and a container that names no package it holds, saying which", async () => {
    const clean = await epub();
    const cut = kindlePreflight(clean.subarray(0, clean.length - 30));
    await expect(cut).rejects.toBeInstanceOf(KindlePreflightFailedError);
    await expect(cut).rejects.toThrow(/^The EPUB could not be prepared for Send to Kindle: the file is not a zip, or is damaged/);
    const elsewhere = await writeZip([
      { name: "mimetype", data: Buffer.from("application/epub+zip"), store: true },
      { name: "META-INF/container.xml", data: Buffer.from(CONTAINER.replace("OEBPS/content.opf", "book.opf")) },
    ]);
    const refused = await kindlePreflight(elsewhere).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(KindlePreflightFailedError);
    expect((refused as KindlePreflightFailedError).statusCode).toBe(422);
    expect((refused as KindlePreflightFailedError).errorType).toBe("KindlePreflightFailed");
    expect((refused as Error).message).toContain('names the package document "book.opf", which the EPUB does not hold');
  });
});
