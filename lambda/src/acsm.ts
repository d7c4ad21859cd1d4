import { AcsmExpiredError, BadRequestError, NotAnAcsmError, type OtherFileKind } from "./errors";
import { collectElementText, XmlRefusal } from "./strict-xml";

/** What the handler needs to know about a fulfillment token before handing it to the converter. */
export interface AcsmInfo {
  /** `<expiration>` as written in the token, if present. */
  readonly expiration: string | undefined;
  /** `<dc:title>` of the book, if present (the converter names its output after it). */
  readonly title: string | undefined;
  /** `<dc:format>` of the book, if present (`application/epub+zip` or `application/pdf`). */
  readonly format: string | undefined;
  /** `<operatorURL>`: the distributor's fulfilment server, always http: or https:. */
  readonly operatorURL: string;
}

const ADEPT_NS = "http://ns.adobe.com/adept";
const DC_NS = "http://purl.org/dc/elements/1.1/";

const NOT_A_TOKEN = `This is not an ACSM file: expected an Adobe ADEPT <fulfillmentToken xmlns="${ADEPT_NS}"> document.`;

/** Elements whose text is read, keyed by the name they are looked up by. */
type Wanted = "operatorURL" | "hmac" | "expiration" | "title" | "format";

/** Deepest element nesting accepted (real tokens nest 4 levels). */
const MAX_DEPTH = 32;

/**
 * What kind of other file `start` (the first bytes of a body, as text) is, when it is one of those
 * people send instead of the ACSM: a PDF (`%PDF-`, ISO 32000-2 §7.5.2), an EPUB or other zip (a local
 * file header, `PK\x03\x04`; an EPUB's first entry is the stored `mimetype` file holding
 * `application/epub+zip`, EPUB OCF 3.3 §4.2.4), or an HTML page (`<!DOCTYPE html` or `<html`, after
 * an optional XML declaration). Undefined for anything else, which the token check then judges.
 * Latin-1 or UTF-8 text both work: the signatures are ASCII.
 */
export function otherFileKind(start: string): OtherFileKind | undefined {
  const text = start.replace(/^\uFEFF/, "").trimStart();
  if (text.startsWith("%PDF-")) return "PDF";
  if (text.startsWith("PK\u0003\u0004")) return text.slice(0, 256).includes("mimetypeapplication/epub+zip") ? "EPUB" : "zip";
  const body = text.replace(/^<\?xml[^>]*\?>\s*/i, "");
  if (/^<!doctype\s+html[\s>]/i.test(body) || /^<html[\s>]/i.test(body)) return "HTML";
  return undefined;
}

/**
 * Parses the token with a conforming, namespace-aware XML parser in one linear pass (the regular
 * expressions this replaces took seconds on some 256 KiB inputs and accepted tokens hidden in
 * comments, CDATA or wrapper elements). Parsing stops at the first error.
 */
function readToken(xml: string): Map<Wanted, string> {
  try {
    return collectElementText<Wanted>(xml, {
      namespaces: true,
      // A token is four levels deep; saxes's namespace resolution is quadratic in depth.
      maxDepth: MAX_DEPTH,
      tooDeep: `The ACSM nests elements more than ${MAX_DEPTH} deep; it is not an ADEPT fulfillment token.`,
      rootProblem: (tag) => (tag.local === "fulfillmentToken" && tag.uri === ADEPT_NS ? undefined : NOT_A_TOKEN),
      field: (tag) => {
        // libgourou finds <operatorURL> and <hmac> with the XPath `//operatorURL` / `//hmac` on a
        // pugixml document, which is not namespace-aware: it matches the literal, unprefixed name
        // anywhere in the document, first in document order. Checking the same names here means a
        // token passes this check exactly when the converter will find them.
        if ((tag.name === "operatorURL" || tag.name === "hmac") && tag.uri === ADEPT_NS) return tag.name;
        if (tag.local === "expiration" && tag.uri === ADEPT_NS) return "expiration";
        if ((tag.local === "title" || tag.local === "format") && tag.uri === DC_NS) return tag.local as "title" | "format";
        return undefined;
      },
    });
  } catch (err) {
    if (!(err instanceof XmlRefusal)) throw err;
    if (err.kind === "document") throw new BadRequestError(err.message);
    // The parser's own words ("3:8: text data outside of root node.") stay in a field of their own,
    // so that the page can say it in plain words and keep them for whoever debugs.
    throw new BadRequestError(`The ACSM ${err.message}.`, err.kind === "malformed" ? { xml_error: /\((.*)\)$/s.exec(err.message)?.[1] ?? err.message } : {});
  }
}

/**
 * Checks the operator URL the converter will POST to: only http: and https: (libcurl would also
 * speak file:, ftp:, gopher:, dict: … when given such a URL directly), no credentials.
 * Which addresses it may reach is enforced when the converter connects (see egress-proxy.ts).
 */
function checkOperatorUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadRequestError(`The ACSM's <operatorURL> "${raw.slice(0, 200)}" is not a URL.`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new BadRequestError(`The ACSM's <operatorURL> must be an http(s) URL, not ${url.protocol}.`);
  }
  if (url.username || url.password) throw new BadRequestError("The ACSM's <operatorURL> must not contain credentials.");
  return raw;
}

/**
 * Checks that `xml` is a well-formed ADEPT fulfillment token carrying what the converter needs
 * (`<operatorURL>` with an http(s) URL and `<hmac>`), and that it has not expired at `now`.
 * Throws {@link NotAnAcsmError} for a PDF, EPUB, zip or HTML file, {@link BadRequestError} for
 * anything else that is not such a token, and {@link AcsmExpiredError} (410) when
 * `<expiration>` is in the past, because no retry can succeed then.
 */
export function validateAcsm(xml: string, now: Date): AcsmInfo {
  const token = checkedToken(xml);
  if (token.expiration !== undefined && token.expiresAt !== undefined && hasExpired(token.expiresAt, now)) throw new AcsmExpiredError(token.expiration);
  return { expiration: token.expiration, title: token.found.get("title"), format: token.found.get("format"), operatorURL: checkOperatorUrl(token.operatorURL) };
}

/**
 * The checks {@link validateAcsm} and {@link describeAcsm} share, in this order: another kind of
 * file, the XML, `<operatorURL>`, `<hmac>`, and that `<expiration>` is a date. The operator URL's
 * own check comes after the expiry in validateAcsm, so it is left to the callers.
 */
function checkedToken(xml: string): { found: Map<Wanted, string>; operatorURL: string; expiration: string | undefined; expiresAt: number | undefined } {
  const other = otherFileKind(xml.slice(0, 512));
  if (other !== undefined) throw new NotAnAcsmError(other);
  const found = readToken(xml);
  const operatorURL = found.get("operatorURL");
  if (!operatorURL) {
    throw new BadRequestError("The ACSM has no <operatorURL> (the distributor's server); download the ACSM again from the shop.");
  }
  if (found.get("hmac") === undefined) {
    throw new BadRequestError("The ACSM has no <hmac> signature; download the ACSM again from the shop.");
  }
  const expiration = found.get("expiration");
  let expiresAt: number | undefined;
  if (expiration !== undefined) {
    expiresAt = Date.parse(expiration);
    if (Number.isNaN(expiresAt)) {
      throw new BadRequestError(`The ACSM's <expiration> "${expiration.slice(0, 100)}" is not a date.`);
    }
  }
  return { found, operatorURL, expiration, expiresAt };
}

/**
 * Whether a token whose `<expiration>` is `at` (ms since the epoch) has expired at `now`: at the
 * expiration instant itself it has. The one rule {@link validateAcsm} and `knock inspect` judge by.
 */
export function hasExpired(at: number, now: Date): boolean {
  return at <= now.getTime();
}

/** A token's facts as `knock inspect` shows them: {@link AcsmInfo} and what else the token says about itself. */
export interface AcsmDescription extends AcsmInfo {
  /** `<expiration>` as ms since the epoch, when present (always a valid date: the check refuses others). */
  readonly expiresAt: number | undefined;
  /** The host of `<operatorURL>`: the distributor's fulfilment server. */
  readonly operatorHost: string;
  /** `<distributor>`: the distributor's id (a `urn:uuid:…`), if present. */
  readonly distributor: string | undefined;
  /** `<resource>` in `<resourceItemInfo>`: the book's id at the distributor, if present. */
  readonly resource: string | undefined;
  /** `<dc:creator>` of the book, if present. */
  readonly creator: string | undefined;
  /** `<dc:language>` of the book, if present (the Kindle pre-flight's language for an EPUB without a valid one). */
  readonly language: string | undefined;
  /** The root's `fulfillmentType` attribute as written (`buy`, `loan`, …), if present. */
  readonly fulfillmentType: string | undefined;
}

/** Elements only the description reads, on a second pass (see {@link describeAcsm}). */
type Described = "distributor" | "resource" | "creator" | "language";

/**
 * The facts of a fulfillment token, read without the clock and without any request: the same checks
 * as {@link validateAcsm} (it throws the same errors for the same inputs) except the expiry, which
 * the caller judges with {@link hasExpired}, plus the distributor, the resource, the author and the
 * root's `fulfillmentType`. Those are read on a second pass of their own, so that validateAcsm's
 * pass (and what it finds) stays exactly as the handler has it.
 */
export function describeAcsm(xml: string): AcsmDescription {
  const { found, operatorURL, expiration, expiresAt } = checkedToken(xml);
  const checkedUrl = checkOperatorUrl(operatorURL);
  // The document already parsed once, so this pass cannot fail.
  let fulfillmentType: string | undefined;
  const more = collectElementText<Described>(xml, {
    namespaces: true,
    maxDepth: MAX_DEPTH,
    tooDeep: NOT_A_TOKEN,
    rootProblem: (tag) => {
      const attr = (tag.attributes as Record<string, { value: string } | string>)["fulfillmentType"];
      fulfillmentType = typeof attr === "string" ? attr : attr?.value;
      return undefined;
    },
    field: (tag) => {
      if ((tag.local === "distributor" || tag.local === "resource") && tag.uri === ADEPT_NS) return tag.local;
      if (tag.local === "creator" && tag.uri === DC_NS) return "creator";
      if (tag.local === "language" && tag.uri === DC_NS) return "language";
      return undefined;
    },
  });
  return {
    expiration,
    expiresAt,
    title: found.get("title"),
    format: found.get("format"),
    operatorURL: checkedUrl,
    operatorHost: new URL(checkedUrl).host,
    distributor: more.get("distributor") || undefined,
    resource: more.get("resource") || undefined,
    creator: more.get("creator") || undefined,
    language: more.get("language")?.trim() || undefined,
    fulfillmentType,
  };
}
