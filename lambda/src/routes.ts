import { requireToken, tokenMatches } from "./access";
import { jsonAnswer, type HandlerResult } from "./answer";
import { ROUTES, isFeed, isPublic, matchPath, normalisePath, resolveRoute, routeList, type Resolution, type RouteId, type RouteParams, type RouteSpec } from "./contract";
import { refuseCrossOrigin } from "./cross-origin";
import { MethodNotAllowedError, NotFoundError } from "./errors";
import { isFunctionUrlEvent, quality, requestPath } from "./request";
import type { Call, Services } from "./use-cases/context";
import { convert } from "./use-cases/convert";
import { forgetLoan, listLoans, returnLoan } from "./use-cases/loans";
import { sendToKindle } from "./use-cases/kindle";
import { opdsBook, opdsFeed, opdsPage } from "./use-cases/opds";
import { page } from "./use-cases/page";

/**
 * The function's router: the contract's route table (contract/routes.ts), each route bound to its
 * use case (use-cases/). Which request goes where, what a 404 lists, a 405's `Allow` and which
 * routes need the token are all read from the table.
 */

/** Answers one route. */
export type UseCase = (services: Services, call: Call) => Promise<HandlerResult>;

/** A use case for every route of a table: a route without one does not compile. */
export type UseCases<R extends RouteSpec> = { readonly [K in R["id"]]: UseCase };

/** The service's routes and what answers each: a typed answer of the contract, as JSON (the page: HTML). */
export const USE_CASES: { readonly [K in RouteId]: UseCase } = {
  page: async () => page(),
  health: async (services, call) => jsonAnswer(200, await services.health.check(call)),
  convert: async (services, call) => jsonAnswer(200, await convert(services, call)),
  loans: async (services) => jsonAnswer(200, await listLoans(services)),
  "loan-return": async (services, call) => jsonAnswer(200, await returnLoan(services, call)),
  "loan-forget": async (services, call) => jsonAnswer(200, await forgetLoan(services, call)),
  kindle: async (services, call) => jsonAnswer(200, await sendToKindle(services, call)),
  "opds-feed": opdsFeed,
  "opds-page": opdsPage,
  "opds-book": opdsBook,
};

/**
 * A resolution to the OPDS feed's routes stands only with the feed's own secret as its `<feed>`
 * segment (compared as the access token is: SHA-256, constant time). Without it — a wrong secret,
 * or a service with no feed — the request is one for a path the service does not have, and is
 * answered exactly as one: no status, header or timing says that a feed exists.
 */
export function withFeedSecret<R extends RouteSpec>(resolution: Resolution<R>, rawPath: string, feedSha256: Buffer | undefined): Resolution<R> {
  const routes = resolution.kind === "route" ? [resolution.route] : resolution.kind === "method-not-allowed" ? resolution.routes : [];
  const feedRoute = routes.find(isFeed);
  if (feedRoute === undefined) return resolution;
  const secret = matchPath(feedRoute.path, normalisePath(rawPath))?.feed;
  if (feedSha256 !== undefined && tokenMatches(secret, feedSha256)) return resolution;
  return { kind: "not-found" };
}

/** The route a direct invocation (the event is the JSON request itself) takes. */
const DIRECT_INVOCATION_ROUTE = "convert" satisfies RouteId;

/**
 * How an event resolves against `table`, without reading its body: a direct invocation is the
 * conversion; a Function URL event by its method, its path and, among routes sharing both, the
 * answer type its Accept header prefers (request.ts `quality`, RFC 9110 §12.5.1).
 */
export function resolveEvent<R extends RouteSpec>(event: unknown, table: readonly R[]): Resolution<R> {
  if (!isFunctionUrlEvent(event)) {
    const route = table.find((r) => r.id === DIRECT_INVOCATION_ROUTE);
    if (route === undefined) throw new Error(`The route table has no "${DIRECT_INVOCATION_ROUTE}" route for direct invocations.`);
    return { kind: "route", route, params: {} };
  }
  const accept = event.headers?.accept;
  return resolveRoute(table, event.requestContext.http.method, requestPath(event), (type) => {
    const [t, s] = type.split("/");
    return quality(accept, t, s);
  });
}

/**
 * The route of a resolution, or its refusal: 404 listing every route of the table, or 405 naming
 * the path's methods (`Allow`) and what each does there.
 */
export function settle<R extends RouteSpec>(resolution: Resolution<R>, method: string, table: readonly R[]): { route: R; params: RouteParams } {
  if (resolution.kind === "not-found") throw new NotFoundError(routeList(table));
  if (resolution.kind === "method-not-allowed") throw new MethodNotAllowedError(method.toUpperCase(), resolution.path, resolution.routes);
  return { route: resolution.route, params: resolution.params };
}

/** {@link settle} of {@link resolveEvent}: the event's route, or its 404/405. */
export function routeOf<R extends RouteSpec>(event: unknown, table: readonly R[]): { route: R; params: RouteParams } {
  return settle(resolveEvent(event, table), isFunctionUrlEvent(event) ? event.requestContext.http.method : "", table);
}

/** Answers one invocation: everything but the invocation's own collaborators (`params` comes from the route). */
export type Router = (services: Services, call: Omit<Call, "params">) => Promise<HandlerResult>;

/** The service's router: the contract's {@link ROUTES} and {@link USE_CASES}. */
export function createRouter(): Router;
/** A router over another table (tests: a dummy route added to the contract's). */
export function createRouter<R extends RouteSpec>(table: readonly R[], useCases: UseCases<R>): Router;
export function createRouter(table: readonly RouteSpec[] = ROUTES, useCases: Readonly<Record<string, UseCase>> = USE_CASES): Router {
  return async (services, call) => {
    const { event } = call;
    const functionUrl = isFunctionUrlEvent(event);
    const resolution = functionUrl ? withFeedSecret(resolveEvent(event, table), requestPath(event), services.config.opdsFeedTokenSha256) : resolveEvent(event, table);
    // Token mode: every Function URL request but a public route's (the page, which holds no secret)
    // shows the token before anything else is read — a path or method that resolves to no route
    // too. Direct invocations already passed IAM (lambda:InvokeFunction).
    const token = services.config.accessTokenSha256;
    // The feed's routes show their own secret instead (withFeedSecret): an e-reader app can neither
    // sign SigV4 nor send a Bearer token.
    if (token !== undefined && functionUrl && !(resolution.kind === "route" && (isPublic(resolution.route) || isFeed(resolution.route)))) {
      requireToken(event.headers, token, call.log);
    }
    // Then, still before the body is read: a state-changing request that a browser says another
    // page sent is refused. After the token check, so that a caller without the token learns
    // nothing else (in TOKEN mode a foreign page cannot send the token anyway: a request that
    // carries Authorization needs a CORS preflight, and the page's token lives in its own origin).
    if (functionUrl) {
      refuseCrossOrigin({ method: event.requestContext.http.method, headers: event.headers, domainName: event.requestContext.domainName });
    }
    const { route, params } = settle(resolution, functionUrl ? event.requestContext.http.method : "", table);
    // The use case reads the body, if its route takes one (Content-Type, size: request.ts).
    return useCases[route.id](services, { ...call, params });
  };
}
