import { posix } from "node:path";
import { ServiceError } from "../errors";
import { readZip, writeZip, ZipProblem, type ZipEntry } from "../zip";

/**
 * The Kindle pre-flight: a copy of an EPUB fixed for what Amazon's Send to Kindle refuses with
 * "E999 – Internal Error" though the book opens elsewhere. The causes people meet, as the EPUB fix
 * tools that Kindle users run name them, each fixed here with a targeted edit so that the rest of
 * every file stays byte for byte as it was:
 * - an XML file without an XML declaration naming UTF-8: Amazon then reads it as ISO-8859-1, and
 *   every accented letter breaks (XML 1.0 §4.3.3 makes UTF-8 the default; Amazon does not). Only
 *   files whose bytes are UTF-8 are relabelled; any other is left alone and listed as skipped;
 * - no `dc:language`, or one that is not a language tag (RFC 5646 §2.1's syntax): the language from
 *   the ACSM's metadata is set, else `und` ("undetermined", RFC 5646 §4.1);
 * - links to a content document's `<body id>`: the fragment is dropped, the link goes to the file;
 * - `<img>` without `src`: removed (it shows nothing anywhere);
 * - several `dc:title`s and none refined as the main one (EPUB 3.3 §5.5.3.2 `title-type`): the first
 *   is kept and the others removed, with the `<meta refines>` that described them. Removing rather
 *   than marking the first as main because EPUB 2 packages have no `refines` to mark it with, and
 *   reading systems that know no refinement show the first title anyway;
 * - `mimetype` not the first entry, compressed, or not exactly `application/epub+zip`: the container's
 *   rule (EPUB 3.3 §4.1 OCF) is restored. Every copy written keeps it first and stored.
 */

/** What kind of defect a {@link PreflightFix} repaired. */
export type PreflightFixKind = "xml-declaration" | "language" | "body-id-link" | "img-without-src" | "main-title" | "mimetype";

/** What the pre-flight changed, file by file. */
export interface PreflightFix {
  /** The entry's path in the EPUB (`OEBPS/content.opf`). */
  readonly file: string;
  readonly fix: PreflightFixKind;
  /** What was wrong and what it is now, in words for the answer's `preflight_fixes`. */
  readonly detail: string;
}

/** A file the pre-flight could not fix and left byte for byte as it was. */
export interface PreflightSkip {
  readonly file: string;
  readonly reason: string;
}

export interface PreflightResult {
  /** The fixed copy (the input's bytes, when nothing needed fixing). */
  readonly bytes: Buffer;
  readonly fixes: readonly PreflightFix[];
  /** Files left as they were because they could not be read as UTF-8 (Amazon may still misread them). */
  readonly skipped: readonly PreflightSkip[];
}

/** 422: the converted file is not an EPUB the pre-flight can read. */
export class KindlePreflightFailedError extends ServiceError {
  constructor(problem: string) {
    super(422, "KindlePreflightFailed", `The EPUB could not be prepared for Send to Kindle: ${problem}. It was not sent; the book can still be downloaded.`);
  }
}

/** Limits for reading the book: Amazon takes 50 MB per message, so a larger zip is never sent anyway. */
const LIMITS = { maxArchiveBytes: 60_000_000, maxEntries: 20_000, maxEntryBytes: 150_000_000, maxTotalBytes: 400_000_000 } as const;

/** The files that are XML in an EPUB (content documents, package, NCX, SVG, SMIL, META-INF). */
const XML_FILE = /\.(xhtml|html|htm|opf|ncx|xml|svg|smil)$/i;
const CONTENT_DOCUMENT = /\.(xhtml|html|htm)$/i;
const MIMETYPE = "application/epub+zip";
/** The Dublin Core elements' namespace (EPUB 3.3 §5.5.3, OPF 2.0.1 §2.2). */
const DC_NAMESPACE = "http://purl.org/dc/elements/1.1/";

/**
 * RFC 5646 §2.1 `langtag`: language (2-3 letters with up to three extlangs, or 4-8 letters), then
 * optional script (4 letters), region (2 letters or 3 digits), variants, extensions and private use;
 * or a private-use tag alone (`x-…`). Grandfathered tags (§2.2.8) are not accepted: none is a language
 * a shop writes today, and `und` replaces them.
 */
const LANGUAGE_TAG =
  /^(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})(?:-[a-z]{4})?(?:-(?:[a-z]{2}|\d{3}))?(?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*(?:-[\da-wyz](?:-[a-z\d]{2,8})+)*(?:-x(?:-[a-z\d]{1,8})+)?$|^x(?:-[a-z\d]{1,8})+$/i;

/** True for a well-formed language tag (RFC 5646 §2.1). */
export function isLanguageTag(tag: string): boolean {
  return LANGUAGE_TAG.test(tag.trim());
}

// ignoreBOM keeps a byte order mark in the text, so an edited file is written back with it.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decode(data: Buffer): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A start tag's attributes by name as written (`xlink:href`), values unescaped of nothing: ids and hrefs are compared as written. */
function attributes(tag: string): Map<string, string> {
  const found = new Map<string, string>();
  // Skips the element's name, so `<img` is never read as an attribute.
  const rest = tag.replace(/^<[^\s/>]+/, "");
  for (const m of rest.matchAll(/\s([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    if (!found.has(m[1])) found.set(m[1], m[2] ?? m[3]);
  }
  return found;
}

/** A start tag, its quoted attribute values free to hold `>`. */
const startTag = (name: string): RegExp => new RegExp(`<${name}(?=[\\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>`, "gi");

interface Edit {
  readonly text: string;
  /** Absent when nothing had to change. */
  readonly detail?: string;
}

/**
 * `<?xml version="1.0" encoding="utf-8"?>` at the start, or the declaration's encoding made UTF-8.
 * XML 1.0 §2.8: the declaration comes first (only a BOM before it), and its pseudo-attributes in the
 * order version, encoding, standalone — so a missing encoding goes right after the version.
 */
function withUtf8Declaration(text: string): Edit {
  const bom = text.startsWith("\uFEFF") ? "\uFEFF" : "";
  const lead = /^\s*/.exec(text.slice(bom.length))![0];
  const body = text.slice(bom.length + lead.length);
  // `<?xml` then white space: `<?xml-stylesheet …?>` is a processing instruction, not a declaration.
  const decl = /^<\?xml(\s[^?]*)\?>/.exec(body);
  if (decl === null) return { text: `${bom}<?xml version="1.0" encoding="utf-8"?>\n${text.slice(bom.length)}`, detail: "added an XML declaration with encoding utf-8" };
  const moved = lead === "" ? "" : " (and removed the white space before it, which XML does not allow)";
  const pseudo = decl[1];
  const encoding = /(\sencoding\s*=\s*)(["'])([^"']*)\2/.exec(pseudo);
  if (encoding !== null && encoding[3].trim().toLowerCase() === "utf-8") {
    return lead === "" ? { text } : { text: `${bom}${body}`, detail: "removed the white space before the XML declaration, which XML does not allow" };
  }
  let fixed: string;
  if (encoding !== null) {
    fixed = pseudo.replace(encoding[0], `${encoding[1]}${encoding[2]}utf-8${encoding[2]}`);
  } else {
    const version = /^\s+version\s*=\s*(["'])[^"']*\1/.exec(pseudo);
    // Without a version the declaration is not XML at all: the standard one replaces it.
    fixed = version === null ? ' version="1.0" encoding="utf-8"' : `${version[0]} encoding="utf-8"${pseudo.slice(version[0].length)}`;
  }
  const said = encoding === null ? "no encoding" : `encoding ${encoding[3]}`;
  return { text: `${bom}<?xml${fixed}?>${body.slice(decl[0].length)}`, detail: `the XML declaration said ${said}; it now says utf-8 (the bytes are UTF-8)${moved}` };
}

/** The package document's path, from META-INF/container.xml's first rootfile. */
function packagePath(entries: readonly ZipEntry[]): string {
  const container = entries.find((e) => e.name === "META-INF/container.xml");
  if (container === undefined) throw new KindlePreflightFailedError("it has no META-INF/container.xml, so it is not an EPUB");
  const text = decode(container.data);
  if (text === undefined) throw new KindlePreflightFailedError("its META-INF/container.xml is not UTF-8");
  const rootfile = startTag("(?:[\\w.-]+:)?rootfile").exec(text);
  const path = rootfile === null ? undefined : attributes(rootfile[0]).get("full-path");
  if (path === undefined) throw new KindlePreflightFailedError("its META-INF/container.xml names no package document (no rootfile full-path)");
  if (!entries.some((e) => e.name === path)) throw new KindlePreflightFailedError(`its META-INF/container.xml names the package document ${JSON.stringify(path)}, which the EPUB does not hold`);
  return path;
}

/** The prefix the package binds to the Dublin Core namespace (`dc` nearly always). */
function dcPrefix(opf: string): string {
  const bound = new RegExp(`xmlns:([\\w.-]+)\\s*=\\s*["']${escapeRegExp(DC_NAMESPACE)}["']`).exec(opf);
  return bound?.[1] ?? "dc";
}

/** Every `<dc:NAME>`, empty or not, with the white space after it (removed with it). */
function dcElements(opf: string, dc: string, name: string): RegExpExecArray[] {
  const qname = `${escapeRegExp(dc)}:${name}`;
  return [...opf.matchAll(new RegExp(`<${qname}(?=[\\s/>])((?:[^>"'/]|"[^"]*"|'[^']*'|/(?!>))*)(?:/>|>([^<]*)</${qname}\\s*>)(\\s*)`, "g"))];
}

/** Removes the matched spans from `text` (matches from one pass, so they do not overlap). */
function without(text: string, spans: readonly RegExpExecArray[]): string {
  let out = text;
  for (const span of [...spans].sort((a, b) => b.index - a.index)) out = out.slice(0, span.index) + out.slice(span.index + span[0].length);
  return out;
}

/** The package document with a valid `dc:language`: invalid ones replaced, or removed when a valid one is there. */
function fixLanguage(opf: string, language: string): Edit {
  const dc = dcPrefix(opf);
  const elements = dcElements(opf, dc, "language");
  if (elements.length === 0) {
    const end = /<\/(?:[\w.-]+:)?metadata\s*>/.exec(opf);
    if (end === null) return { text: opf };
    const xmlns = new RegExp(`xmlns:${escapeRegExp(dc)}\\s*=`).test(opf) ? "" : ` xmlns:${dc}="${DC_NAMESPACE}"`;
    return { text: `${opf.slice(0, end.index)}<${dc}:language${xmlns}>${language}</${dc}:language>\n${opf.slice(end.index)}`, detail: `there was no dc:language; it is now "${language}"` };
  }
  const said = (e: RegExpExecArray): string => (e[2] ?? "").trim();
  const invalid = elements.filter((e) => !isLanguageTag(said(e)));
  if (invalid.length === 0) return { text: opf };
  const valid = elements.find((e) => isLanguageTag(said(e)));
  if (valid !== undefined) {
    const words = invalid.map((e) => `"${said(e)}"`).join(", ");
    return { text: without(opf, invalid), detail: `removed dc:language ${words}, not a language tag (the book also says "${said(valid)}")` };
  }
  const [first, ...rest] = invalid;
  const replaced = `<${dc}:language${first[1].replace(/\s+$/, "")}>${language}</${dc}:language>${first[3]}`;
  const text = without(opf.slice(0, first.index) + replaced + opf.slice(first.index + first[0].length), rest.map((e) => shifted(e, replaced.length - first[0].length)));
  const also = rest.length === 0 ? "" : ` (and removed ${rest.length} more that were not language tags)`;
  return { text, detail: `dc:language was "${said(first)}", not a language tag; it is now "${language}"${also}` };
}

/** A match moved by `delta` characters (after an edit before it). */
function shifted(match: RegExpExecArray, delta: number): RegExpExecArray {
  return Object.assign([...match], { index: match.index + delta, input: match.input, groups: match.groups }) as RegExpExecArray;
}

/** The `<meta refines="#id">…</meta>` elements of the package, with their target and property. */
function refinements(opf: string): { match: RegExpExecArray; target: string; property: string; value: string }[] {
  const metas = [...opf.matchAll(/<meta(?=[\s/>])((?:[^>"'/]|"[^"]*"|'[^']*'|\/(?!>))*)(?:\/>|>([^<]*)<\/meta\s*>)(\s*)/g)];
  return metas.flatMap((match) => {
    const attrs = attributes(`<meta${match[1]}>`);
    const refines = attrs.get("refines");
    if (refines === undefined || !refines.startsWith("#")) return [];
    return [{ match, target: refines.slice(1), property: attrs.get("property") ?? "", value: (match[2] ?? "").trim() }];
  });
}

/** The package document with one main title: the first `dc:title` kept when several are there and none is refined as main. */
function fixTitles(opf: string): Edit {
  const titles = dcElements(opf, dcPrefix(opf), "title");
  if (titles.length < 2) return { text: opf };
  const metas = refinements(opf);
  const mainIds = new Set(metas.filter((m) => m.property === "title-type" && m.value === "main").map((m) => m.target));
  const idOf = (t: RegExpExecArray): string | undefined => attributes(`<t${t[1]}>`).get("id");
  if (titles.some((t) => mainIds.has(idOf(t) ?? ""))) return { text: opf };
  const removed = titles.slice(1);
  const removedIds = new Set(removed.flatMap((t) => idOf(t) ?? []));
  // Their refinements (title-type, display-seq, file-as…) would point at nothing, which EPUB 3.3 forbids
  // (a `refines` names an element of the package; EPUBCheck reports RSC-005).
  const orphans = metas.filter((m) => removedIds.has(m.target)).map((m) => m.match);
  const also = orphans.length === 0 ? "" : ` and the ${orphans.length} <meta refines> describing them`;
  return {
    text: without(opf, [...removed, ...orphans]),
    detail: `${titles.length} dc:title elements and none marked main: kept the first ("${(titles[0][2] ?? "").trim()}"), removed ${removed.length}${also}`,
  };
}

/** `<img>` elements without a `src` attribute, removed (with an `</img>` closing one). */
function removeImagesWithoutSrc(text: string): { text: string; count: number } {
  let count = 0;
  const img = new RegExp(`${startTag("img").source}(?:\\s*</img\\s*>)?`, "gi");
  const out = text.replace(img, (tag) => {
    if (attributes(tag).has("src")) return tag;
    count++;
    return "";
  });
  return { text: out, count };
}

/** A relative link's target file (resolved against the linking file) and fragment; undefined for links without a fragment or to other sites. */
function resolveHref(from: string, href: string): { path: string; fragment: string } | undefined {
  const hash = href.indexOf("#");
  if (hash < 0 || /^[a-z][a-z\d+.-]*:/i.test(href) || href.startsWith("//")) return undefined;
  try {
    const target = decodeURIComponent(href.slice(0, hash));
    const path = target === "" ? from : posix.normalize(posix.join(posix.dirname(from), target));
    return { path, fragment: decodeURIComponent(href.slice(hash + 1)) };
  } catch {
    return undefined;
  }
}

/** The id of each content document's `<body>`, by file. */
function bodyIds(texts: ReadonlyMap<string, string | undefined>): Map<string, string> {
  const ids = new Map<string, string>();
  for (const [name, text] of texts) {
    if (text === undefined || !CONTENT_DOCUMENT.test(name)) continue;
    const body = startTag("body").exec(text);
    const id = body === null ? undefined : attributes(body[0]).get("id");
    if (id !== undefined) ids.set(name, id);
  }
  return ids;
}

/**
 * `text` with its links to a `<body>` id pointing at the file instead. Links are `href` (and SVG's
 * `xlink:href`) everywhere, and in an NCX also `<content src>`, the form its navPoints link with.
 */
function unlinkBodyIds(name: string, text: string, ids: ReadonlyMap<string, string>): { text: string; count: number } {
  let count = 0;
  const link = /\.ncx$/i.test(name) ? /(\s(?:(?:xlink:)?href|src)\s*=\s*)(?:"([^"]*)"|'([^']*)')/gi : /(\s(?:xlink:)?href\s*=\s*)(?:"([^"]*)"|'([^']*)')/gi;
  const out = text.replace(link, (whole, lead: string, double: string | undefined, single: string | undefined) => {
    const href = double ?? single ?? "";
    const target = resolveHref(name, href);
    if (target === undefined || ids.get(target.path) !== target.fragment) return whole;
    count++;
    const quote = double === undefined ? "'" : '"';
    const file = href.slice(0, href.indexOf("#")) || posix.basename(name);
    return `${lead}${quote}${file}${quote}`;
  });
  return { text: out, count };
}

/** What is wrong with how the zip holds `mimetype` (OCF: the first entry, stored, no extra field, exactly `application/epub+zip`), or undefined. */
function mimetypeProblem(zip: Buffer, mimetype: ZipEntry): string | undefined {
  // APPNOTE.TXT 6.3 §4.3.7: the first local file header; method at 8, name length at 26, extra length at 28, name at 30.
  const first = zip.length >= 30 && zip.readUInt32LE(0) === 0x04034b50 ? zip.subarray(30, 30 + zip.readUInt16LE(26)).toString("latin1") : undefined;
  if (first !== "mimetype") return "mimetype was not the first entry of the zip; it is now";
  if (zip.readUInt16LE(8) !== 0) return "mimetype was compressed; it is now stored";
  if (zip.readUInt16LE(28) !== 0) return "mimetype's zip header had an extra field; it now has none";
  if (mimetype.data.toString("latin1") !== MIMETYPE) return `mimetype said ${JSON.stringify(mimetype.data.toString("latin1"))}; it now says exactly ${MIMETYPE}`;
  return undefined;
}

/**
 * Fixes a copy of the EPUB `epub` for Send to Kindle; `epub` itself is not changed. `language` (the
 * ACSM's, when it has one) replaces a missing or invalid `dc:language`; without a valid one, `und`.
 * Throws {@link KindlePreflightFailedError} (422) for a damaged zip or a file that is not an EPUB.
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
  if (mimetype === undefined || mimetype.data.toString("latin1").trim() !== MIMETYPE) {
    throw new KindlePreflightFailedError(`it has no "mimetype" entry saying ${MIMETYPE}, so it is not an EPUB`);
  }
  const opfPath = packagePath(entries);
  const texts = new Map<string, string | undefined>(entries.filter((e) => XML_FILE.test(e.name) || e.name === opfPath).map((e) => [e.name, decode(e.data)]));
  const skipped: PreflightSkip[] = [...texts].filter(([, text]) => text === undefined).map(([file]) => ({ file, reason: "not UTF-8: left as it was, no fix applied to it" }));
  const language = options.language !== undefined && isLanguageTag(options.language) ? options.language.trim() : "und";
  const fixes: PreflightFix[] = [];
  const edited = new Map<string, string>();
  const current = (name: string): string | undefined => edited.get(name) ?? texts.get(name);
  const apply = (name: string, fix: PreflightFixKind, result: Edit): void => {
    if (result.detail === undefined) return;
    edited.set(name, result.text);
    fixes.push({ file: name, fix, detail: result.detail });
  };

  const layout = mimetypeProblem(epub, mimetype);
  if (layout !== undefined) fixes.push({ file: "mimetype", fix: "mimetype", detail: layout });

  const opf = current(opfPath);
  if (opf !== undefined) {
    apply(opfPath, "language", fixLanguage(opf, language));
    apply(opfPath, "main-title", fixTitles(current(opfPath)!));
  }

  const ids = bodyIds(texts);
  for (const name of texts.keys()) {
    const text = current(name);
    if (text === undefined) continue;
    const { text: relinked, count } = unlinkBodyIds(name, text, ids);
    if (count > 0) apply(name, "body-id-link", { text: relinked, detail: `${count} link${count === 1 ? "" : "s"} to a <body> id now point${count === 1 ? "s" : ""} at the file` });
    if (CONTENT_DOCUMENT.test(name)) {
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

  if (fixes.length === 0) return { bytes: epub, fixes, skipped };
  const rest = entries.filter((e) => e.name !== "mimetype");
  const bytes = await writeZip([
    { name: "mimetype", data: Buffer.from(MIMETYPE, "latin1"), store: true },
    ...rest.map((e) => {
      const text = edited.get(e.name);
      return { name: e.name, data: text === undefined ? e.data : Buffer.from(text, "utf8") };
    }),
  ]);
  return { bytes, fixes, skipped };
}
