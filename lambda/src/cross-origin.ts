import { CrossOriginRequestError } from "./errors";

/**
 * Defence against other websites (issue 16). A page on any site can make its visitor's browser send
 * requests to this service — form posts and "simple" fetches go out without a CORS preflight (Fetch
 * standard, "CORS-safelisted request-header"), and the Function URL's CORS rule admits any origin
 * anyway — so the service must not act on a request a browser says another page sent. Browsers say
 * so in two headers that page script cannot set (both are forbidden request-header names):
 *
 * - `Origin` (RFC 6454 §7; Fetch, "append a request `Origin` header"): sent on every request whose
 *   method is neither GET nor HEAD, same-origin ones included. `null` (RFC 6454 §7.3) comes from an
 *   opaque origin — a sandboxed frame, a `data:` URL or a file — or from a redirect across origins:
 *   never from this service's own page, whose fetches carry its real origin.
 * - `Sec-Fetch-Site` (W3C Fetch Metadata Request Headers §2.4): `same-origin`, `same-site`,
 *   `cross-site` or `none` (the user typed the address or used a bookmark), computed over every
 *   redirect of the request. `same-site` is refused too: another port of 127.0.0.1 is the same site
 *   (sites ignore ports), and that is exactly where an attacker's page on loopback would be.
 *
 * curl, the knock client and direct invocations send neither header and pass: they are the caller
 * acting for itself, with no visitor's browser to borrow. Reads (GET, HEAD) and preflights (OPTIONS)
 * change nothing, and the browser keeps their answers from the foreign page unless CORS allows it.
 */

/** Methods that change nothing here: the check does not apply to them. */
const READ_ONLY_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** `Sec-Fetch-Site` values that say the request is the user's own or this origin's. */
const OWN_FETCH_SITES: ReadonlySet<string> = new Set(["same-origin", "none"]);

/** Longest header value echoed back in an answer (the values come from the caller). */
const ECHO_LIMIT = 200;

/** The parts of a Function URL request the check reads. */
export interface RequestOrigin {
  readonly method: string;
  /** Header names lower-cased, as payload 2.0 delivers them. */
  readonly headers: Readonly<Record<string, string | undefined>> | undefined;
  /** `requestContext.domainName`: the Function URL's own host name, used when there is no Host header. */
  readonly domainName: string | undefined;
}

const echo = (value: string): string => (value.length > ECHO_LIMIT ? `${value.slice(0, ECHO_LIMIT)}…` : value);

/**
 * The host (and port, when not the scheme's default) that `origin` names, or undefined when it is
 * not a serialized `http`/`https` origin.
 */
function originHost(origin: string): { scheme: string; host: string } | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  // A serialized origin is scheme://host[:port] and nothing more (RFC 6454 §6.2), exactly as the
  // browser wrote it: anything else (a path, credentials, a default port spelled out) is no browser's.
  if (url.origin !== origin) return undefined;
  return { scheme: url.protocol, host: url.host };
}

/**
 * The service's own host[:port] as the Origin of its page would name it: the request's Host header
 * (what the browser connected to: `<url-id>.lambda-url.<region>.on.aws`, or `127.0.0.1:<port>` for
 * `knock serve`), else the Function URL's domainName. Parsed as a URL of the Origin's scheme, which
 * lower-cases the name, drops a default port written out (`:443`) and normalizes IPv6 literals, as
 * the browser did when it serialized the Origin.
 */
function ownHost(request: RequestOrigin, scheme: string): string | undefined {
  const host = request.headers?.host?.trim() || request.domainName?.trim();
  if (!host) return undefined;
  try {
    const url = new URL(`${scheme}//${host}`);
    // Anything but a bare host[:port] (a path, credentials) is not a Host header value.
    return url.pathname === "/" && url.username === "" && url.search === "" ? url.host : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses a state-changing request that a browser says another page sent: 403 CrossOriginRequest.
 * The scheme is not compared, only host and port: the Function URL answers https only and
 * `knock serve` http only, so a page of the other scheme on the same host and port cannot exist.
 */
export function refuseCrossOrigin(request: RequestOrigin): void {
  const method = request.method.toUpperCase();
  if (READ_ONLY_METHODS.has(method)) return;
  const origin = request.headers?.origin?.trim();
  const fetchSite = request.headers?.["sec-fetch-site"]?.trim().toLowerCase();
  const only = "Requests that change something are accepted only from this service's own page, or from clients that send no Origin header (curl, knock).";

  if (origin !== undefined && origin !== "") {
    if (origin.toLowerCase() === "null") {
      throw new CrossOriginRequestError(
        `This ${method} request has Origin: null: a browser sent it from a sandboxed frame, a file or a data: URL, or after a redirect from another site, not from this service's own page. ${only}`,
        { origin: "null" },
      );
    }
    const parsed = originHost(origin);
    const own = parsed && ownHost(request, parsed.scheme);
    if (parsed === undefined || own === undefined || parsed.host !== own) {
      const ownText = own === undefined ? "" : ` (${echo(own)})`;
      throw new CrossOriginRequestError(
        `This ${method} request was sent by a page at ${echo(origin)}, which is not this service's own address${ownText}. ${only}`,
        { origin: echo(origin) },
      );
    }
  }
  if (fetchSite !== undefined && fetchSite !== "" && !OWN_FETCH_SITES.has(fetchSite)) {
    throw new CrossOriginRequestError(
      `The browser marked this ${method} request Sec-Fetch-Site: ${echo(fetchSite)}: it was sent by a page on another site or another port, not by this service's own page. ${only}`,
      { sec_fetch_site: echo(fetchSite) },
    );
  }
}
