import { AcsmExpiredError, BadRequestError } from "./errors";

/** What the handler needs to know about a fulfillment token before handing it to the converter. */
export interface AcsmInfo {
  /** `<expiration>` as written in the token, if present. */
  readonly expiration: string | undefined;
  /** `<dc:title>` of the book, if present (for logs only; the converter names the file). */
  readonly title: string | undefined;
}

const ADEPT_NS = "http://ns.adobe.com/adept";

function decodeXmlText(text: string): string {
  return text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&")
    .trim();
}

function firstElementText(xml: string, localName: string): string | undefined {
  const match = new RegExp(`<(?:[\\w.-]+:)?${localName}\\b[^>]*>([^<]*)</(?:[\\w.-]+:)?${localName}>`).exec(xml);
  return match ? decodeXmlText(match[1]) : undefined;
}

/**
 * Checks that `xml` is an ADEPT fulfillment token that has not expired at `now`.
 * Throws {@link BadRequestError} for anything else and {@link AcsmExpiredError} (410) when
 * `<expiration>` is in the past, because no retry can succeed then.
 */
export function validateAcsm(xml: string, now: Date): AcsmInfo {
  // The root element must be fulfillmentToken in the ADEPT namespace (prefixed or default).
  const root = /<([\w.-]+:)?fulfillmentToken\b([^>]*)>/.exec(xml);
  const prefix = root?.[1]?.slice(0, -1);
  const nsAttr = prefix ? `xmlns:${prefix}` : "xmlns";
  const declaresNs = root !== null && new RegExp(`${nsAttr}\\s*=\\s*["']${ADEPT_NS.replace(/[./]/g, "\\$&")}["']`).test(root[2]);
  if (!declaresNs) {
    throw new BadRequestError(
      `This is not an ACSM file: expected an Adobe ADEPT <fulfillmentToken xmlns="${ADEPT_NS}"> document.`,
    );
  }
  const expiration = firstElementText(xml, "expiration");
  if (expiration !== undefined) {
    const at = Date.parse(expiration);
    if (Number.isNaN(at)) {
      throw new BadRequestError(`The ACSM's <expiration> "${expiration}" is not a date.`);
    }
    if (at <= now.getTime()) throw new AcsmExpiredError(expiration);
  }
  return { expiration, title: firstElementText(xml, "title") };
}
