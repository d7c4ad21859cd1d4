import { BadRequestError, MethodNotAllowedError, PayloadTooLargeError } from "./errors";

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
  | { readonly kind: "convert"; readonly source: AcsmSource; readonly filename: string | undefined };

/** The parts of a Function URL (payload 2.0) event the handler reads. */
interface FunctionUrlEventLike {
  requestContext: { http: { method: string } };
  body?: string | null;
  isBase64Encoded?: boolean;
  headers?: Record<string, string | undefined>;
}

function isFunctionUrlEvent(event: unknown): event is FunctionUrlEventLike {
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
  if (method === "GET") return { kind: "health" };
  if (method !== "POST") throw new MethodNotAllowedError(method);
  // A Function URL always hands over a string (or nothing); anything else is a hand-made event.
  const body: unknown = (event as { body?: unknown }).body;
  if (body !== undefined && body !== null && typeof body !== "string") {
    throw new BadRequestError(`The event's body must be a string (the request body), not ${Array.isArray(body) ? "an array" : typeof body}.`);
  }
  return parseBody(decodeBody(body ?? "", event.isBase64Encoded === true));
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

/** A POST body is either JSON (`{...}`) or the raw ACSM XML. */
export function parseBody(body: string): ParsedRequest {
  const text = body.replace(/^\uFEFF/, "").trim();
  if (text === "") {
    throw new BadRequestError('Empty request body: POST the ACSM file, or JSON {"acsm_content": "..."} or {"acsm_url": "https://..."}.');
  }
  if (text.startsWith("<")) {
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
