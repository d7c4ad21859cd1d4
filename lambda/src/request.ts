import {
  ACSM_CONTENT_TYPES,
  BadRequestError,
  JSON_CONTENT_TYPE,
  MethodNotAllowedError,
  NotAnAcsmError,
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from "./errors";
import { otherFileKind } from "./acsm";

/**
 * Largest request body accepted (decoded). ACSM files are a few KB of XML; anything this big is
 * not one, and refusing early keeps memory and /tmp use bounded.
 */
export const MAX_BODY_BYTES = 256 * 1024;

/** Where the ACSM comes from. */
export type AcsmSource = { readonly kind: "content"; readonly content: string } | { readonly kind: "url"; readonly url: string };

/** What a request asks for, after parsing and before any validation of the ACSM itself. */
export type ParsedRequest =
  | { readonly kind: "health" }
  | { readonly kind: "page" }
  | { readonly kind: "convert"; readonly source: AcsmSource; readonly filename: string | undefined }
  | { readonly kind: "loans" }
  | { readonly kind: "loan-return"; readonly id: string }
  | { readonly kind: "loan-forget"; readonly id: string };

/** The parts of a Function URL (payload 2.0) event the handler reads. */
interface FunctionUrlEventLike {
  requestContext: { http: { method: string }; domainName?: string };
  rawPath?: string;
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
 * Turns a Lambda event into a request. Function URL events (payload 2.0) are read by method and
 * body; anything else is a direct invocation whose event object is the JSON request itself.
 */
export function parseRequest(event: unknown): ParsedRequest {
  if (!isFunctionUrlEvent(event)) {
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      throw new BadRequestError("A direct invocation needs a JSON object such as {\"acsm_content\": \"<xml…>\"}.");
    }
    return parseJsonObject(event as Record<string, unknown>);
  }
  const method = event.requestContext.http.method.toUpperCase();
  const path = requestPath(event);
  if (path !== "/") return parseLoanRoute(path, method);
  if (method === "GET") return isPageRequest(event) ? { kind: "page" } : { kind: "health" };
  if (method !== "POST") throw new MethodNotAllowedError(method, ["GET", "POST"]);
  // A Function URL always hands over a string (or nothing); anything else is a hand-made event.
  const body: unknown = (event as { body?: unknown }).body;
  if (body !== undefined && body !== null && typeof body !== "string") {
    throw new BadRequestError(`The event's body must be a string (the request body), not ${Array.isArray(body) ? "an array" : typeof body}.`);
  }
  // The label is checked before the body is decoded: a refused body costs nothing.
  const form = bodyForm(event.headers?.["content-type"]);
  return parseBody(decodeBody(body ?? "", event.isBase64Encoded === true), form);
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
 * True for a browser asking for the web page: `GET /` whose Accept header prefers `text/html` to
 * JSON. curl (any type), fetch() and knock (`application/json`) keep getting the health answer.
 */
export function isPageRequest(event: unknown): boolean {
  if (!isFunctionUrlEvent(event) || event.requestContext.http.method.toUpperCase() !== "GET") return false;
  if ((event.rawPath ?? "/") !== "/") return false;
  const accept = event.headers?.accept;
  return quality(accept, "text", "html") > quality(accept, "application", "json");
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
export function parseBody(body: string, form: BodyForm = "json-or-acsm-file"): ParsedRequest {
  const text = body.replace(/^\uFEFF/, "").trim();
  if (text === "") {
    throw new BadRequestError('Empty request body: POST the ACSM file, or JSON {"acsm_content": "..."} or {"acsm_url": "https://..."}.');
  }
  // The book, an archive or a web page instead of the ACSM: said as such under any accepted label,
  // before it would be called "neither JSON nor an ACSM file" or "not well-formed XML".
  const other = otherFileKind(text.slice(0, 512));
  if (other !== undefined) throw new NotAnAcsmError(other);
  if (text.startsWith("<")) {
    return { kind: "convert", source: { kind: "content", content: text }, filename: undefined };
  }
  if (form === "acsm-file") {
    // Anything else goes to the token check, which says what an ACSM file looks like; JSON sent
    // under a file's label gets the one hint it needs.
    if (text.startsWith("{") || text.startsWith("[")) {
      throw new BadRequestError(`The body is JSON, but its Content-Type says it is the ACSM file: send JSON with Content-Type: ${JSON_CONTENT_TYPE}.`);
    }
    return { kind: "convert", source: { kind: "content", content: text }, filename: undefined };
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
export function parseJsonObject(obj: Record<string, unknown>): ParsedRequest {
  const keys = Object.keys(obj);
  const contentKey = keys.find((k) => /acsm/i.test(k) && /content/i.test(k));
  const urlKey = keys.find((k) => /acsm/i.test(k) && /url/i.test(k));
  const filename = typeof obj.filename === "string" && obj.filename.trim() !== "" ? obj.filename.trim() : undefined;
  if (contentKey !== undefined) {
    const content = obj[contentKey];
    if (typeof content !== "string" || content.trim() === "") {
      throw new BadRequestError(`"${contentKey}" must be a non-empty string holding the ACSM file's XML.`);
    }
    const size = Buffer.byteLength(content, "utf8");
    if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError(size, MAX_BODY_BYTES);
    return { kind: "convert", source: { kind: "content", content: content.trim() }, filename };
  }
  if (urlKey !== undefined) {
    const url = obj[urlKey];
    if (typeof url !== "string" || url.trim() === "") {
      throw new BadRequestError(`"${urlKey}" must be a non-empty string holding an https:// URL of the ACSM file.`);
    }
    return { kind: "convert", source: { kind: "url", url: url.trim() }, filename };
  }
  throw new BadRequestError(
    'JSON body has no ACSM: send {"acsm_content": "<xml…>"} or {"acsm_url": "https://…"}' +
      (keys.length ? ` (got keys: ${keys.slice(0, 10).join(", ")}).` : "."),
  );
}

/**
 * The request's path: `rawPath` of a Function URL event (payload 2.0), else `requestContext.http.path`;
 * one trailing slash is ignored (`/loans/` is `/loans`).
 */
export function requestPath(event: unknown): string {
  const e = event as { rawPath?: unknown; requestContext?: { http?: { path?: unknown } } };
  const raw = typeof e.rawPath === "string" ? e.rawPath : typeof e.requestContext?.http?.path === "string" ? e.requestContext.http.path : "/";
  if (raw === "" || raw === "/") return "/";
  return raw.endsWith("/") ? raw.slice(0, -1) : raw;
}

/**
 * The loan routes (docs/api.md, "Library loans"): `GET /loans`, `POST /loans/<id>/return`,
 * `DELETE /loans/<id>`. Another method on one of these paths is 405; any other path 404. The id is
 * checked where it is used (it must be 16 lowercase hex digits, as libgourou names loans).
 */
export function parseLoanRoute(path: string, method: string): ParsedRequest {
  if (path === "/loans") {
    if (method === "GET") return { kind: "loans" };
    throw new MethodNotAllowedError(method, ["GET"], { path, allowed: "GET" });
  }
  const match = /^\/loans\/([^/]+)(\/return)?$/.exec(path);
  if (match === null) throw new NotFoundError();
  let id: string;
  try {
    id = decodeURIComponent(match[1]);
  } catch {
    id = match[1];
  }
  if (match[2] !== undefined) {
    if (method === "POST") return { kind: "loan-return", id };
    throw new MethodNotAllowedError(method, ["POST"], { path: "a loan's return", allowed: "POST to return the loan" });
  }
  if (method === "DELETE") return { kind: "loan-forget", id };
  throw new MethodNotAllowedError(method, ["DELETE"], { path: "a loan", allowed: "DELETE to forget it, or POST to …/return to return it" });
}
