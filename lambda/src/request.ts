import { ACSM_CONTENT_TYPES, DELIVERIES, JSON_CONTENT_TYPE, MAX_BODY_BYTES, type Delivery } from "./contract";
import { BadRequestError, NotAnAcsmError, PayloadTooLargeError, UnsupportedMediaTypeError } from "./errors";
import { otherFileKind } from "./acsm";

/**
 * Reading a request: which kind of event it is, its method, path and Accept header (what the router
 * in routes.ts resolves against the contract's table), and the conversion's body. No route logic:
 * which request goes where is the table's business.
 */

/** Where the ACSM comes from. */
export type AcsmSource = { readonly kind: "content"; readonly content: string } | { readonly kind: "url"; readonly url: string };

/** What a conversion asks for, after parsing and before any validation of the ACSM itself. */
export interface ConversionInput {
  readonly source: AcsmSource;
  readonly filename: string | undefined;
  /** Where the book goes besides the download link (`deliver`), if anywhere. */
  readonly deliver?: Delivery;
}

/** The parts of a Function URL (payload 2.0) event the handler reads. */
export interface FunctionUrlEventLike {
  requestContext: { http: { method: string; path?: string }; domainName?: string };
  rawPath?: string;
  rawQueryString?: string;
  body?: string | null;
  isBase64Encoded?: boolean;
  headers?: Record<string, string | undefined>;
}

export function isFunctionUrlEvent(event: unknown): event is FunctionUrlEventLike {
  if (typeof event !== "object" || event === null) return false;
  const ctx = (event as { requestContext?: { http?: { method?: unknown } } }).requestContext;
  return typeof ctx?.http?.method === "string";
}

/**
 * The request path of a Function URL event as sent: `rawPath` (payload 2.0), else
 * `requestContext.http.path`, else `/`. The router normalises it (contract `normalisePath`).
 */
export function requestPath(event: FunctionUrlEventLike): string {
  const { rawPath, requestContext } = event;
  return typeof rawPath === "string" ? rawPath : typeof requestContext.http.path === "string" ? requestContext.http.path : "/";
}

/**
 * What a conversion asks for: a direct invocation's event is the JSON request itself; a Function URL
 * event's body is read by its Content-Type (checked before the body is decoded: a refused body costs
 * nothing), within {@link MAX_BODY_BYTES}.
 */
export function readConversion(event: unknown): ConversionInput {
  if (!isFunctionUrlEvent(event)) {
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      throw new BadRequestError("A direct invocation needs a JSON object such as {\"acsm_content\": \"<xml…>\"}.");
    }
    return parseJsonObject(event as Record<string, unknown>);
  }
  // A Function URL always hands over a string (or nothing); anything else is a hand-made event.
  const body: unknown = (event as { body?: unknown }).body;
  if (body !== undefined && body !== null && typeof body !== "string") {
    throw new BadRequestError(`The event's body must be a string (the request body), not ${Array.isArray(body) ? "an array" : typeof body}.`);
  }
  const form = bodyForm(event.headers?.["content-type"]);
  const input = parseBody(decodeBody(body ?? "", event.isBase64Encoded === true), form);
  // `?deliver=kindle` works for every body, the raw ACSM file's too; the JSON field says the same.
  const fromQuery = new URLSearchParams(event.rawQueryString ?? "").get("deliver");
  if (fromQuery === null) return input;
  const deliver = checkDelivery(fromQuery, "?deliver=");
  if (input.deliver !== undefined && input.deliver !== deliver) throw new BadRequestError(`"deliver" is "${input.deliver}" in the body but "${deliver}" in the query: send it once.`);
  return { ...input, deliver };
}

/**
 * A JSON object body (`POST /kindle`): labelled `application/json` or not labelled (415 otherwise,
 * as for a conversion), within {@link MAX_BODY_BYTES}, an object, else 400 saying so.
 */
export function readJsonObject(event: unknown): Record<string, unknown> {
  if (!isFunctionUrlEvent(event)) throw new BadRequestError("This route takes a Function URL request with a JSON body.");
  const contentType = event.headers?.["content-type"];
  if (contentType !== undefined && contentType.trim() !== "" && contentType.split(";")[0].trim().toLowerCase() !== JSON_CONTENT_TYPE) {
    throw new UnsupportedMediaTypeError(contentType.trim().slice(0, 200));
  }
  const raw: unknown = (event as { body?: unknown }).body;
  if (raw !== undefined && raw !== null && typeof raw !== "string") throw new BadRequestError("The event's body must be a string (the request body).");
  const text = decodeBody(raw ?? "", event.isBase64Encoded === true).trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequestError("The body must be a JSON object.");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new BadRequestError("The body must be a JSON object.");
  return parsed as Record<string, unknown>;
}

/** A `deliver` value, or a 400 naming what is allowed. */
function checkDelivery(value: unknown, where: string): Delivery {
  if (typeof value === "string" && (DELIVERIES as readonly string[]).includes(value.trim().toLowerCase())) return value.trim().toLowerCase() as Delivery;
  const shown = typeof value === "string" ? `"${value.slice(0, 40)}"` : JSON.stringify(value)?.slice(0, 40) ?? String(value);
  throw new BadRequestError(`${where} is ${shown}; it may be ${DELIVERIES.map((d) => `"${d}"`).join(" or ")} (send the book to the Kindle), or left out.`);
}

/**
 * How a POST body may be read: only as the raw ACSM file, or as JSON with the ACSM file also
 * recognised (by its leading `<`, which no JSON document has).
 */
export type BodyForm = "acsm-file" | "json-or-acsm-file";

/**
 * Reads a POST's Content-Type (RFC 9110 §8.3.1: type and subtype are case-insensitive, parameters
 * such as `; charset=utf-8` do not change the type).
 *
 * - an ACSM or XML type ({@link ACSM_CONTENT_TYPES}): the body is the ACSM file and nothing else;
 * - `application/json`, or no Content-Type at all (direct invocations' hand-made events, callers
 *   from before this rule): JSON, or an ACSM file;
 * - anything else: 415. That refuses above all the three types a page on another site may send
 *   without a CORS preflight (`text/plain`, `application/x-www-form-urlencoded`,
 *   `multipart/form-data`: Fetch standard, "CORS-safelisted request-header"), which every browser
 *   form and `fetch(…, {mode: "no-cors"})` are limited to.
 *
 * JSON is what carries instructions (`acsm_url` makes the service fetch an address the sender
 * chose), so it is read only when labelled as JSON or not labelled; the ACSM file itself is inert
 * XML, checked strictly as an ADEPT token whatever its label. A browser can also send a body with no
 * Content-Type (a Blob without a type); its Origin header still names the page that sent it, which
 * the cross-origin check (cross-origin.ts) refuses before the body is read.
 */
export function bodyForm(contentType: string | undefined): BodyForm {
  if (contentType === undefined || contentType.trim() === "") return "json-or-acsm-file";
  const essence = contentType.split(";")[0].trim().toLowerCase();
  if (ACSM_CONTENT_TYPES.includes(essence)) return "acsm-file";
  if (essence === JSON_CONTENT_TYPE) return "json-or-acsm-file";
  const shown = contentType.trim();
  throw new UnsupportedMediaTypeError(shown.length > 200 ? `${shown.slice(0, 200)}…` : shown);
}

/**
 * The quality an Accept header gives a media type: that of the most specific range matching it
 * (RFC 9110 §12.5.1: `text/html` over `text/*` over any type), 1 when there is no header, 0 when none matches.
 */
export function quality(accept: string | undefined, type: string, subtype: string): number {
  if (accept === undefined || accept.trim() === "") return 1;
  let best = { specificity: -1, q: 0 };
  for (const range of accept.split(",")) {
    const [media, ...params] = range.split(";").map((p) => p.trim().toLowerCase());
    const [t, s] = media.split("/");
    const specificity = t === type && s === subtype ? 2 : t === type && s === "*" ? 1 : t === "*" && s === "*" ? 0 : -1;
    if (specificity <= best.specificity) continue;
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    best = { specificity, q: Number.isFinite(q) ? Math.min(1, Math.max(0, q)) : 0 };
  }
  return best.q;
}

/** Decodes the body, refusing oversized ones before doing any work on them. */
export function decodeBody(body: string, isBase64Encoded: boolean): string {
  if (!isBase64Encoded) {
    const size = Buffer.byteLength(body, "utf8");
    if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError(size, MAX_BODY_BYTES);
    return body;
  }
  // Base64 is 4/3 of the payload: check the encoded length first so a huge body is never decoded.
  const estimated = Math.floor((body.length * 3) / 4);
  if (estimated > MAX_BODY_BYTES + 2) throw new PayloadTooLargeError(estimated, MAX_BODY_BYTES);
  const bytes = Buffer.from(body, "base64");
  if (bytes.length > MAX_BODY_BYTES) throw new PayloadTooLargeError(bytes.length, MAX_BODY_BYTES);
  return bytes.toString("utf8");
}

/** A POST body is either JSON (`{...}`) or the raw ACSM XML; `form` says which its Content-Type allows. */
export function parseBody(body: string, form: BodyForm = "json-or-acsm-file"): ConversionInput {
  const text = body.replace(/^\uFEFF/, "").trim();
  if (text === "") {
    throw new BadRequestError('Empty request body: POST the ACSM file, or JSON {"acsm_content": "..."} or {"acsm_url": "https://..."}.');
  }
  // The book, an archive or a web page instead of the ACSM: said as such under any accepted label,
  // before it would be called "neither JSON nor an ACSM file" or "not well-formed XML".
  const other = otherFileKind(text.slice(0, 512));
  if (other !== undefined) throw new NotAnAcsmError(other);
  if (text.startsWith("<")) {
    return { source: { kind: "content", content: text }, filename: undefined };
  }
  if (form === "acsm-file") {
    // Anything else goes to the token check, which says what an ACSM file looks like; JSON sent
    // under a file's label gets the one hint it needs.
    if (text.startsWith("{") || text.startsWith("[")) {
      throw new BadRequestError(`The body is JSON, but its Content-Type says it is the ACSM file: send JSON with Content-Type: ${JSON_CONTENT_TYPE}.`);
    }
    return { source: { kind: "content", content: text }, filename: undefined };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequestError(
      'Request body is neither JSON nor an ACSM file: POST the ACSM file, or JSON {"acsm_content": "..."} or {"acsm_url": "https://..."}.',
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new BadRequestError('JSON body must be an object such as {"acsm_content": "..."} or {"acsm_url": "https://..."}.');
  }
  return parseJsonObject(parsed as Record<string, unknown>);
}

/**
 * Finds the ACSM in a JSON object. Keys match loosely, as in the original service: any key
 * containing "acsm" and "content" (or "acsm" and "url"), case-insensitive; content wins over url.
 */
export function parseJsonObject(obj: Record<string, unknown>): ConversionInput {
  const keys = Object.keys(obj);
  const contentKey = keys.find((k) => /acsm/i.test(k) && /content/i.test(k));
  const urlKey = keys.find((k) => /acsm/i.test(k) && /url/i.test(k));
  const filename = typeof obj.filename === "string" && obj.filename.trim() !== "" ? obj.filename.trim() : undefined;
  const deliver = obj.deliver === undefined || obj.deliver === null ? {} : { deliver: checkDelivery(obj.deliver, '"deliver"') };
  const found = findAcsm(obj, keys, contentKey, urlKey, filename);
  return { ...found, ...deliver };
}

function findAcsm(obj: Record<string, unknown>, keys: string[], contentKey: string | undefined, urlKey: string | undefined, filename: string | undefined): ConversionInput {
  if (contentKey !== undefined) {
    const content = obj[contentKey];
    if (typeof content !== "string" || content.trim() === "") {
      throw new BadRequestError(`"${contentKey}" must be a non-empty string holding the ACSM file's XML.`);
    }
    const size = Buffer.byteLength(content, "utf8");
    if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError(size, MAX_BODY_BYTES);
    return { source: { kind: "content", content: content.trim() }, filename };
  }
  if (urlKey !== undefined) {
    const url = obj[urlKey];
    if (typeof url !== "string" || url.trim() === "") {
      throw new BadRequestError(`"${urlKey}" must be a non-empty string holding an https:// URL of the ACSM file.`);
    }
    return { source: { kind: "url", url: url.trim() }, filename };
  }
  throw new BadRequestError(
    'JSON body has no ACSM: send {"acsm_content": "<xml…>"} or {"acsm_url": "https://…"}' +
      (keys.length ? ` (got keys: ${keys.slice(0, 10).join(", ")}).` : "."),
  );
}
