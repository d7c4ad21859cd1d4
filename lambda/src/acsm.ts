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
  if (expiration !== undefined) {
    const at = Date.parse(expiration);
    if (Number.isNaN(at)) {
      throw new BadRequestError(`The ACSM's <expiration> "${expiration.slice(0, 100)}" is not a date.`);
    }
    if (at <= now.getTime()) throw new AcsmExpiredError(expiration);
  }
  return { expiration, title: found.get("title"), format: found.get("format"), operatorURL: checkOperatorUrl(operatorURL) };
}
