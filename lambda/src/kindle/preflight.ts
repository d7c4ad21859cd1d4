import { posix } from "node:path";
import { ServiceError } from "../errors";
import { readZip, writeZip, ZipProblem, type ZipEntry } from "../zip";

/**
 * The Kindle pre-flight: a copy of an EPUB fixed for what Amazon's Send to Kindle refuses with
 * "E999 – Internal Error" though the book opens elsewhere. The causes people meet, as the EPUB fix
 * tools that Kindle users run name them, each fixed here with a targeted edit so that the rest of
 * every file stays byte for byte as it was:
 * - an XML file without an XML declaration naming UTF-8: Amazon then reads it as ISO-8859-1, and
 *   every accented letter breaks (XML 1.0 §4.3.3 makes UTF-8 the default; Amazon does not);
 * - no `dc:language`, or one that is not a language tag (RFC 5646 §2.1's syntax): the language from
 *   the ACSM's metadata is set, else `und` ("undetermined", RFC 5646 §4.1);
 * - links to a content document's `<body id>`: the fragment is dropped, the link goes to the file;
 * - `<img>` without `src`: removed (it shows nothing anywhere);
 * - several `dc:title`s and none refined as the main one (EPUB 3.3 §5.5.3.2 `title-type`): the first
 *   is kept, as reading systems that know no refinement take it.
 * The container's rules stay (EPUB 3.3 §4.1 OCF): `mimetype` first and stored.
 */

/** What the pre-flight changed, file by file. */
export interface PreflightFix {
  readonly file: string;
  readonly fix: "xml-declaration" | "language" | "body-id-link" | "img-without-src" | "main-title";
  readonly detail: string;
}

export interface PreflightResult {
  /** The fixed copy (the input's bytes, when nothing needed fixing). */
  readonly bytes: Buffer;
  readonly fixes: readonly PreflightFix[];
}

/** 422: the converted file is not an EPUB the pre-flight can read. */
export class KindlePreflightFailedError extends ServiceError {
  constructor(problem: string) {
    super(422, "KindlePreflightFailed", `The EPUB could not be prepared for Send to Kindle: ${problem}. It was not sent; the book can still be downloaded.`);
  }
}

/** Limits for reading the book: Amazon takes 50 MB per message, so a larger zip is never sent anyway. */
const LIMITS = { maxArchiveBytes: 60_000_000, maxEntries: 20_000, maxEntryBytes: 150_000_000, maxTotalBytes: 400_000_000 } as const;

/** The files that are XML in an EPUB (content documents, package, NCX, SVG, container). */
const XML_FILE = /\.(xhtml|html|htm|opf|ncx|xml|svg|smil)$/i;

/** RFC 5646 §2.1 `langtag` (language, script, region, variants, extensions, private use), or `x-…`. */
const LANGUAGE_TAG =
  /^(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})(?:-[a-z]{4})?(?:-(?:[a-z]{2}|\d{3}))?(?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*(?:-[\da-wyz](?:-[a-z\d]{2,8})+)*(?:-x(?:-[a-z\d]{1,8})+)?$|^x(?:-[a-z\d]{1,8})+$/i;

/** True for a well-formed language tag (RFC 5646 §2.1). */
export function isLanguageTag(tag: string): boolean {
  return LANGUAGE_TAG.test(tag.trim());
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decode(data: Buffer): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

/** `<?xml version="1.0" encoding="utf-8"?>` at the start, or the declaration's encoding made UTF-8. */
function withUtf8Declaration(text: string): { text: string; detail?: string } {
  const bom = text.startsWith("\uFEFF") ? "\uFEFF" : "";
  const body = text.slice(bom.length);
  const decl = /^<\?xml\b([^?]*)\?>/.exec(body);
  if (decl === null) return { text: `${bom}<?xml version="1.0" encoding="utf-8"?>\n${body}`, detail: "added an XML declaration with encoding utf-8" };
  const encoding = /\sencoding\s*=\s*(["'])([^"']*)\1/.exec(decl[1]);
  if (encoding !== null && encoding[2].trim().toLowerCase() === "utf-8") return { text };
  const attrs = encoding === null ? `${decl[1].replace(/\s+$/, "")} encoding="utf-8"` : decl[1].replace(encoding[0], ' encoding="utf-8"');
  const said = encoding === null ? "no encoding" : `encoding ${encoding[2]}`;
  return { text: `${bom}<?xml${attrs}?>${body.slice(decl[0].length)}`, detail: `the XML declaration said ${said}; it now says utf-8 (the bytes are UTF-8)` };
}

/** The package document's path, from META-INF/container.xml's first rootfile. */
function packagePath(files: Map<string, string | undefined>): string {
  const container = files.get("META-INF/container.xml");
  if (container === undefined) throw new KindlePreflightFailedError("it has no META-INF/container.xml, so it is not an EPUB");
  const path = /<(?:\w+:)?rootfile\b[^>]*\sfull-path\s*=\s*(["'])([^"']+)\1/.exec(container)?.[2];
  if (path === undefined || !files.has(path)) throw new KindlePreflightFailedError("its container.xml names no package document it holds");
  return path;
}

/** The package document with a valid `dc:language`. */
function fixLanguage(opf: string, language: string): { text: string; detail?: string } {
  const found = /<dc:language\b[^>]*>([^<]*)<\/dc:language>/.exec(opf);
  if (found !== null) {
    if (isLanguageTag(found[1])) return { text: opf };
    const fixed = found[0].replace(/>[^<]*</, `>${language}<`);
    return { text: opf.replace(found[0], fixed), detail: `dc:language was "${found[1].trim()}", not a language tag; it is now "${language}"` };
  }
  const end = /<\/(?:\w+:)?metadata\s*>/.exec(opf);
  if (end === null) return { text: opf };
  const xmlns = /xmlns:dc\s*=/.test(opf) ? "" : ' xmlns:dc="http://purl.org/dc/elements/1.1/"';
  return { text: `${opf.slice(0, end.index)}<dc:language${xmlns}>${language}</dc:language>\n${opf.slice(end.index)}`, detail: `there was no dc:language; it is now "${language}"` };
}

/** The package document with one main title. */
function fixTitles(opf: string): { text: string; detail?: string } {
  const titles = [...opf.matchAll(/<dc:title\b([^>]*)>[\s\S]*?<\/dc:title>\s*/g)];
  if (titles.length < 2) return { text: opf };
  const refinedMain = titles.some((t) => {
    const id = /\sid\s*=\s*(["'])([^"']+)\1/.exec(t[1])?.[2];
    return id !== undefined && new RegExp(`<meta\\b[^>]*refines\\s*=\\s*["']#${id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["'][^>]*property\\s*=\\s*["']title-type["'][^>]*>\\s*main\\s*<`).test(opf);
  });
  if (refinedMain) return { text: opf };
  let text = opf;
  for (const extra of titles.slice(1)) text = text.replace(extra[0], "");
  return { text, detail: `${titles.length} dc:title elements and none marked main: kept the first, removed ${titles.length - 1}` };
}

/** `<img>` elements without a `src` attribute, removed. */
function removeImagesWithoutSrc(text: string): { text: string; count: number } {
  let count = 0;
  const out = text.replace(/<img\b(?:[^>"']|"[^"]*"|'[^']*')*>(?:\s*<\/img>)?/gi, (tag) => {
    if (/\ssrc\s*=/i.test(tag.replace(/^<img/i, " "))) return tag;
    count++;
    return "";
  });
  return { text: out, count };
}

/** `href` targets resolved against the linking file, for finding links to a body's id. */
function resolveHref(from: string, href: string): { path: string; fragment: string } | undefined {
  const hash = href.indexOf("#");
  if (hash < 0 || /^[a-z][a-z\d+.-]*:/i.test(href)) return undefined;
  let target: string;
  try {
    target = decodeURIComponent(href.slice(0, hash));
  } catch {
    return undefined;
  }
  const path = target === "" ? from : posix.normalize(posix.join(posix.dirname(from), target));
  return { path, fragment: href.slice(hash + 1) };
}

/**
 * Fixes a copy of the EPUB `epub` for Send to Kindle. `language` (the ACSM's, when it has one)
 * replaces a missing or invalid `dc:language`; without one, `und`.
 */
export async function kindlePreflight(epub: Buffer, options: { readonly language?: string } = {}): Promise<PreflightResult> {
  let entries: ZipEntry[];
  try {
    entries = await readZip(epub, LIMITS);
  } catch (err) {
    if (err instanceof ZipProblem) throw new KindlePreflightFailedError(err.message);
    throw err;
  }
  const mimetype = entries.find((e) => e.name === "mimetype");
  if (mimetype === undefined || mimetype.data.toString("latin1").trim() !== "application/epub+zip") {
    throw new KindlePreflightFailedError('it has no "mimetype" entry saying application/epub+zip, so it is not an EPUB');
  }
  const texts = new Map<string, string | undefined>(entries.filter((e) => XML_FILE.test(e.name)).map((e) => [e.name, decode(e.data)]));
  const opfPath = packagePath(texts);
  const language = options.language !== undefined && isLanguageTag(options.language) ? options.language.trim() : "und";
  const fixes: PreflightFix[] = [];
  const edited = new Map<string, string>();
  const current = (name: string): string | undefined => edited.get(name) ?? texts.get(name);
  const apply = (name: string, fix: PreflightFix["fix"], result: { text: string; detail?: string }): void => {
    if (result.detail === undefined) return;
    edited.set(name, result.text);
    fixes.push({ file: name, fix, detail: result.detail });
  };

  const opf = current(opfPath);
  if (opf === undefined) throw new KindlePreflightFailedError(`its package document ${opfPath} is not UTF-8`);
  apply(opfPath, "language", fixLanguage(opf, language));
  apply(opfPath, "main-title", fixTitles(current(opfPath)!));

  // Ids on <body>, by file: links to them lose their fragment.
  const bodyIds = new Map<string, Set<string>>();
  for (const [name, text] of texts) {
    const id = text === undefined ? undefined : /<body\b[^>]*\sid\s*=\s*(["'])([^"']+)\1/i.exec(text)?.[2];
    if (id !== undefined) bodyIds.set(name, new Set([id]));
  }
  for (const name of texts.keys()) {
    const text = current(name);
    if (text === undefined) continue;
    let count = 0;
    const relinked = text.replace(/(\shref\s*=\s*)(["'])([^"']*)\2/gi, (whole, lead: string, quote: string, href: string) => {
      const target = resolveHref(name, href);
      if (target === undefined || !bodyIds.get(target.path)?.has(target.fragment)) return whole;
      count++;
      const file = href.slice(0, href.indexOf("#")) || posix.basename(name);
      return `${lead}${quote}${file}${quote}`;
    });
    if (count > 0) apply(name, "body-id-link", { text: relinked, detail: `${count} link${count === 1 ? "" : "s"} to a <body> id now point${count === 1 ? "s" : ""} at the file` });
    if (/\.(xhtml|html|htm)$/i.test(name)) {
      const { text: cleaned, count: removed } = removeImagesWithoutSrc(current(name)!);
      if (removed > 0) apply(name, "img-without-src", { text: cleaned, detail: `removed ${removed} <img> without src` });
    }
  }
  // Last, so that every file (edited or not) is checked in its final form.
  for (const name of texts.keys()) {
    const text = current(name);
    if (text === undefined) continue;
    apply(name, "xml-declaration", withUtf8Declaration(text));
  }

  if (fixes.length === 0) return { bytes: epub, fixes };
  const rest = entries.filter((e) => e.name !== "mimetype");
  const bytes = await writeZip([
    { name: "mimetype", data: mimetype.data, store: true },
    ...rest.map((e) => ({ name: e.name, data: edited.has(e.name) ? Buffer.from(edited.get(e.name)!, "utf8") : e.data })),
  ]);
  return { bytes, fixes };
}
