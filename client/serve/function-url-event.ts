/**
 * What Lambda does around the handler for a Function URL, reproduced for `knock serve`:
 * the request → event translation and the response → HTTP translation.
 *
 * Sources: AWS Lambda Developer Guide, "Invoking Lambda function URLs" — "Request payload format"
 * (the event fields, the documented example kept in test/fixtures/function-url/), "Response payload
 * format" (statusCode, headers, body, cookies, isBase64Encoded, and the inferred response when the
 * function returns no statusCode) and "Cookies". Function URLs use API Gateway's payload format 2.0:
 * header names lower-cased, repeated headers joined with commas, the Cookie header moved to
 * `cookies`, repeated query parameters joined with commas in `queryStringParameters`.
 */

/** Largest request body a Function URL accepts (Lambda quotas: 6 MB synchronous invocation payload). */
export const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

/** The request as the HTTP server saw it. */
export interface RawRequest {
  readonly method: string;
  /** Path and query as sent (`/my/path?a=1`). */
  readonly url: string;
  readonly httpVersion: string;
  /** Node's `rawHeaders`: name, value, name, value… in arrival order, original case. */
  readonly rawHeaders: readonly string[];
  readonly sourceIp: string;
  readonly body: Buffer;
}

/** The Function URL event (payload format 2.0) the handler receives. */
export interface FunctionUrlEvent {
  version: "2.0";
  routeKey: "$default";
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: "$default";
    stage: "$default";
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

/**
 * Whether Lambda hands the body to the function as text. The guide says only "if the content type
 * of the request is binary, the body is base64-encoded" without a list; what AWS does, as observed
 * and reported (e.g. ministack PR #766 against HTTP APIs with payload 2.0, floci issue #3153 for
 * Function URLs, CUDly PR #1483 for form posts): text for `text/*`, `application/json`,
 * `application/xml` and `application/javascript`; base64 for everything else, including
 * `application/x-www-form-urlencoded` and a missing Content-Type.
 */
export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(";")[0].trim().toLowerCase();
  return type.startsWith("text/") || type === "application/json" || type === "application/xml" || type === "application/javascript";
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `requestContext.time`: `12/Mar/2020:19:03:58 +0000` (the access-log time format, UTC). */
export function requestTime(date: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} +0000`;
}

/** Joins repeated headers as payload 2.0 does (`header2: value1,value2`), names lower-cased. */
export function joinHeaders(rawHeaders: readonly string[]): { headers: Record<string, string>; cookies: string[] } {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (name === "cookie") {
      // Payload 2.0 moves cookies out of the headers into their own array, one per cookie.
      cookies.push(...value.split(";").map((c) => c.trim()).filter(Boolean));
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  return { headers, cookies };
}

/** `queryStringParameters`: values decoded, repeated keys joined with commas. */
export function queryParameters(rawQueryString: string): Record<string, string> | undefined {
  if (rawQueryString === "") return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(rawQueryString)) out[key] = key in out ? `${out[key]},${value}` : value;
  return out;
}

/** Builds the event Lambda would pass for this request. */
export function toFunctionUrlEvent(
  req: RawRequest,
  context: { readonly requestId: string; readonly now: Date; readonly traceId: string },
): FunctionUrlEvent {
  const q = req.url.indexOf("?");
  const rawPath = q === -1 ? req.url : req.url.slice(0, q);
  const rawQueryString = q === -1 ? "" : req.url.slice(q + 1);
  const { headers, cookies } = joinHeaders(req.rawHeaders);
  const domainName = (headers.host ?? "localhost").replace(/:\d+$/, "");
  // Headers the Function URL front end adds (seen in real events: x-forwarded-*, x-amzn-trace-id).
  headers["x-forwarded-for"] = req.sourceIp;
  headers["x-forwarded-proto"] = "http";
  headers["x-amzn-trace-id"] = context.traceId;

  const event: FunctionUrlEvent = {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      // "anonymous" is what Lambda puts here for a URL with auth type NONE, which is what a local,
      // unauthenticated server is.
      accountId: "anonymous",
      apiId: "knock-serve",
      domainName,
      domainPrefix: domainName.split(".")[0],
      http: {
        method: req.method.toUpperCase(),
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: context.requestId,
      routeKey: "$default",
      stage: "$default",
      time: requestTime(context.now),
      timeEpoch: context.now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (cookies.length > 0) event.cookies = cookies;
  const query = queryParameters(rawQueryString);
  if (query !== undefined) event.queryStringParameters = query;
  if (req.body.length > 0) {
    const text = isTextContentType(headers["content-type"]);
    event.body = req.body.toString(text ? "utf8" : "base64");
    event.isBase64Encoded = !text;
  }
  return event;
}

/** The HTTP response Lambda sends for what the function returned. */
export interface HttpAnswer {
  readonly statusCode: number;
  /** Header name → value(s); `set-cookie` may repeat. */
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

/**
 * Maps the function's result to the HTTP response ("Response payload format"): a result with a
 * `statusCode` is used as is (body base64-decoded when `isBase64Encoded`, `cookies` become
 * `set-cookie` headers); anything else is sent as a 200 JSON document.
 */
export function toHttpAnswer(result: unknown): HttpAnswer {
  if (typeof result === "object" && result !== null && typeof (result as { statusCode?: unknown }).statusCode === "number") {
    const r = result as { statusCode: number; headers?: Record<string, unknown>; body?: unknown; isBase64Encoded?: boolean; cookies?: unknown };
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(r.headers ?? {})) if (value !== undefined && value !== null) headers[name.toLowerCase()] = String(value);
    if (Array.isArray(r.cookies) && r.cookies.length > 0) headers["set-cookie"] = r.cookies.map(String);
    const text = typeof r.body === "string" ? r.body : r.body === undefined || r.body === null ? "" : JSON.stringify(r.body);
    return { statusCode: r.statusCode, headers, body: Buffer.from(text, r.isBase64Encoded === true ? "base64" : "utf8") };
  }
  return { statusCode: 200, headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify(result ?? null)) };
}
