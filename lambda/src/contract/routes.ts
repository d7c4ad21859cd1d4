/**
 * Every route the function answers, written once. The function dispatches by this table
 * (lambda/src/routes.ts binds each id to its use case, and the compiler refuses a route without
 * one); the 404 answer's `routes` list, a 405's `Allow` (the methods of the routes `resolveRoute` finds on the path), the page's exemption from the token and the
 * Function URL's CORS methods are all derived from it here. Dependency-free: the Pulumi program
 * reads it too.
 */
import { ACSM_CONTENT_TYPES, JSON_CONTENT_TYPE, OPDS_ACQUISITION_FEED_TYPE } from "./api";

/**
 * Who may call a route in TOKEN mode: everyone (the page holds no secret), the token's holder, or
 * the holder of the OPDS feed's own secret, which is the route's `<feed>` segment ("feed": an
 * e-reader app can neither sign SigV4 nor send our token, so the secret is in the path; a wrong
 * one answers exactly as a path the service does not have).
 */
export type RouteAuth = "public" | "token" | "feed";

/** One route. */
export interface RouteSpec {
  /** The use case that answers it. */
  readonly id: string;
  readonly method: string;
  /** The path, with `<name>` for one path segment the route reads (`/loans/<id>`). */
  readonly path: string;
  readonly auth: RouteAuth;
  /**
   * What the answer is. Two routes may share a method and path when they answer different types;
   * the request's Accept header chooses (RFC 9110 §12.5.1), and HTML loses a tie: only a browser
   * that prefers it gets it. `application/octet-stream`: a redirect to a stored book of its own type.
   */
  readonly produces: "application/json" | "text/html" | typeof OPDS_ACQUISITION_FEED_TYPE | "application/octet-stream";
  /** The request body's content types (a POST's); none for a route without a body. */
  readonly accepts?: readonly string[];
  /** What the route does, in the words a 405 uses ("use POST to convert an ACSM"). */
  readonly does: string;
}

export const ROUTES = [
  { id: "page", method: "GET", path: "/", auth: "public", produces: "text/html", does: "open the web page" },
  { id: "health", method: "GET", path: "/", auth: "token", produces: JSON_CONTENT_TYPE, does: "check health" },
  {
    id: "convert", method: "POST", path: "/", auth: "token", produces: JSON_CONTENT_TYPE,
    accepts: [...ACSM_CONTENT_TYPES, JSON_CONTENT_TYPE], does: "convert an ACSM",
  },
  { id: "loans", method: "GET", path: "/loans", auth: "token", produces: JSON_CONTENT_TYPE, does: "list the loans" },
  { id: "loan-return", method: "POST", path: "/loans/<id>/return", auth: "token", produces: JSON_CONTENT_TYPE, does: "return the loan" },
  { id: "loan-forget", method: "DELETE", path: "/loans/<id>", auth: "token", produces: JSON_CONTENT_TYPE, does: "forget the loan" },
  { id: "kindle", method: "POST", path: "/kindle", auth: "token", produces: JSON_CONTENT_TYPE, accepts: [JSON_CONTENT_TYPE], does: "send a converted book to the Kindle" },
  // The OPDS feed (docs/api.md "OPDS feed"): `<feed>` is the feed's secret. The feed wins over the
  // page on a tie (KOReader sends `application/opds+json, application/atom+xml;profile=opds-catalog, */*`).
  { id: "opds-feed", method: "GET", path: "/opds/<feed>", auth: "feed", produces: OPDS_ACQUISITION_FEED_TYPE, does: "read the OPDS feed" },
  { id: "opds-page", method: "GET", path: "/opds/<feed>", auth: "feed", produces: "text/html", does: "open the library page" },
  { id: "opds-book", method: "GET", path: "/opds/<feed>/books/<book>", auth: "feed", produces: "application/octet-stream", does: "download the book" },
] as const satisfies readonly RouteSpec[];

/** The name of every route's use case. */
export type RouteId = (typeof ROUTES)[number]["id"];

/** The path's `<name>` segments, decoded (`/loans/<id>` on `/loans/abc` gives `{id: "abc"}`). */
export type RouteParams = Readonly<Record<string, string>>;

/**
 * The request path as routes see it: one trailing slash is ignored (`/loans/` is `/loans`), and
 * an empty path is `/`.
 */
export function normalisePath(raw: string): string {
  if (raw === "" || raw === "/") return "/";
  return raw.endsWith("/") ? raw.slice(0, -1) : raw;
}

/** The params of `path` under `pattern`, or undefined when it does not match. */
export function matchPath(pattern: string, path: string): RouteParams | undefined {
  const want = pattern.split("/");
  const got = normalisePath(path).split("/");
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const name = /^<([a-z_]+)>$/.exec(want[i])?.[1];
    if (name === undefined) {
      if (want[i] !== got[i]) return undefined;
      continue;
    }
    if (got[i] === "") return undefined;
    try {
      params[name] = decodeURIComponent(got[i]);
    } catch {
      params[name] = got[i];
    }
  }
  return params;
}

/**
 * `GET /`, `POST /loans/<id>/return`, …: what a 404 lists, each once, in table order. The feed's
 * routes are left out: their path is a secret, and a 404 must not hint that a feed exists.
 */
export function routeList(table: readonly RouteSpec[] = ROUTES): string[] {
  return [...new Set(table.filter((r) => !isFeed(r)).map((r) => `${r.method} ${r.path}`))];
}

/** Every method the service answers: what the Function URL's CORS configuration allows. */
export function corsMethods(table: readonly RouteSpec[] = ROUTES): string[] {
  return [...new Set(table.map((r) => r.method))];
}

/** How a request resolves against the table. */
export type Resolution<R extends RouteSpec> =
  | { readonly kind: "route"; readonly route: R; readonly params: RouteParams }
  | { readonly kind: "not-found" }
  /** `routes`: every route on the path, in table order (their methods are the `Allow` header). */
  | { readonly kind: "method-not-allowed"; readonly path: string; readonly routes: readonly R[] };

/**
 * Finds the route for a request. `prefers(type)` says how much the request's Accept header wants a
 * type (0–1); among routes sharing method and path, the most wanted answer type wins, and HTML
 * loses a tie (curl's and KOReader's `*\/*`, or no Accept at all, get the JSON or the feed).
 */
export function resolveRoute<R extends RouteSpec>(table: readonly R[], method: string, rawPath: string, prefers: (type: string) => number): Resolution<R> {
  const path = normalisePath(rawPath);
  const onPath = table.map((route) => ({ route, params: matchPath(route.path, path) })).filter((m) => m.params !== undefined);
  if (onPath.length === 0) return { kind: "not-found" };
  const candidates = onPath.filter((m) => m.route.method === method.toUpperCase());
  if (candidates.length === 0) return { kind: "method-not-allowed", path: onPath[0].route.path, routes: onPath.map((m) => m.route) };
  const rank = (r: RouteSpec): number => prefers(r.produces) + (r.produces === "text/html" ? 0 : 1e-9);
  const best = candidates.reduce((a, b) => (rank(b.route) > rank(a.route) ? b : a));
  return { kind: "route", route: best.route, params: best.params ?? {} };
}

/**
 * What a 405 tells the caller to do instead, from the routes on the path: "use GET to open the web
 * page or check health, or POST to convert an ACSM".
 */
export function instead(routes: readonly RouteSpec[]): string {
  const byMethod = new Map<string, string[]>();
  for (const r of routes) byMethod.set(r.method, [...(byMethod.get(r.method) ?? []), r.does]);
  const phrases = [...byMethod].map(([method, does]) => `${method} to ${does.join(" or ")}`);
  return phrases.length <= 1 ? `use ${phrases.join("")}` : `use ${phrases.slice(0, -1).join(", ")}, or ${phrases[phrases.length - 1]}`;
}

/** True when the route answers without the token (the page). */
export function isPublic(route: RouteSpec): boolean {
  return route.auth === "public";
}

/** True when the route is the OPDS feed's: the `<feed>` secret in its path stands for the token. */
export function isFeed(route: RouteSpec): boolean {
  return route.auth === "feed";
}
