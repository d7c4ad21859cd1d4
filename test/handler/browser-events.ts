// Function URL events (payload 2.0) as a browser's or curl's request produces them, built from the
// example request payload in the AWS Lambda Developer Guide (test/fixtures/function-url/), with the
// headers real requests carry: `host` (the Function URL's own name, as in Powertools' documented
// LambdaFunctionUrlSchema example event), and what the browser adds — `origin`, `sec-fetch-site`,
// `content-type`.
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The documented example event, without its `_source` note. */
const DOCUMENTED: Record<string, unknown> = (() => {
  const { _source: _, ...event } = JSON.parse(readFileSync(join(__dirname, "../fixtures/function-url/aws-docs-request-payload.json"), "utf8")) as Record<string, unknown>;
  return event;
})();

/** The Function URL host name the events are addressed to (a Function URL's shape: `<url-id>.lambda-url.<region>.on.aws`). */
export const FUNCTION_HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-west-2.on.aws";
/** The origin of the service's own page at {@link FUNCTION_HOST}. */
export const OWN_ORIGIN = `https://${FUNCTION_HOST}`;

/** What a request looks like on the wire. */
export interface WireRequest {
  readonly method: string;
  /** @default "/" */
  readonly path?: string;
  /** Request headers, names in any case (payload 2.0 lower-cases them). `host` defaults to {@link FUNCTION_HOST}; `null` leaves it out. */
  readonly headers?: Readonly<Record<string, string | null>>;
  readonly body?: string;
  /** Whether the Function URL hands the body over base64-encoded (it does for binary content types). */
  readonly base64?: boolean;
  /** `requestContext.domainName`. @default the Host header's name, as Lambda sets it; `null` leaves it out */
  readonly domainName?: string | null;
}

/** The event Lambda passes for `request`. */
export function functionUrlEvent(request: WireRequest): Record<string, unknown> {
  const event = structuredClone(DOCUMENTED) as Record<string, unknown> & { requestContext: Record<string, unknown> & { http: Record<string, unknown> } };
  const headers: Record<string, string> = { host: FUNCTION_HOST, "user-agent": "test", "x-forwarded-proto": "https" };
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (value === null) delete headers[name.toLowerCase()];
    else headers[name.toLowerCase()] = value;
  }
  const path = request.path ?? "/";
  event.rawPath = path;
  event.rawQueryString = "";
  delete event.queryStringParameters;
  delete event.cookies;
  event.headers = headers;
  event.requestContext.http = { ...event.requestContext.http, method: request.method, path };
  const domainName = request.domainName === undefined ? (headers.host ?? FUNCTION_HOST).replace(/:\d+$/, "") : request.domainName;
  if (domainName === null) delete event.requestContext.domainName;
  else event.requestContext.domainName = domainName;
  if (request.body === undefined) delete event.body;
  else event.body = request.base64 ? Buffer.from(request.body).toString("base64") : request.body;
  event.isBase64Encoded = request.base64 === true;
  return event;
}

/**
 * Headers a browser adds to a request that a page at `origin` makes to the service (a form post, or
 * `fetch(…, {mode: "no-cors"})`): Origin on any method but GET/HEAD (Fetch, "append a request
 * `Origin` header") and Sec-Fetch-Site.
 */
export function fromPage(origin: string, site: "same-origin" | "same-site" | "cross-site"): Record<string, string> {
  return { origin, "sec-fetch-site": site, "sec-fetch-mode": site === "same-origin" ? "cors" : "no-cors" };
}
