// The router (lambda/src/routes.ts) over the contract's route table: every 404, 405 and token
// decision is read from the table, so a route added to it is listed, allowed and dispatched with no
// other change — shown here with a dummy route in a copy of the table.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { jsonAnswer } from "../../lambda/src/answer";
import type { HandlerConfig } from "../../lambda/src/config";
import { ROUTES, corsMethods, isFeed, isPublic, routeList, type RouteSpec } from "../../lambda/src/contract";
import { MethodNotAllowedError, NotFoundError, ServiceError, UnauthorizedError } from "../../lambda/src/errors";
import { createHandler } from "../../lambda/src/handler";
import { createLogger } from "../../lambda/src/log";
import { createRouter, USE_CASES, type UseCase, type UseCases } from "../../lambda/src/routes";
import type { Services } from "../../lambda/src/use-cases/context";
import { TOOLS_DIR, fakeContext } from "./harness";

const TOKEN = "rT5-wQ8_zXc3Vb7nMk2Lp9";
const LOAN_ID = "0123456789abcdef";
/** The OPDS feed's secret, which its routes' `<feed>` segment carries. */
const FEED = "Jq2xV0m8LrP4tYw6nB1sK9dF3hG5jZ7cA0eQ2uI4oXy";
const FEED_SHA256 = createHash("sha256").update(FEED).digest();
const BOOK_ID = "6f1c2b9e-2d4a-4c8e-9b1f-0a2b3c4d5e6f";

/** A Function URL event for `method path` (`<id>` filled in), asking for `accept`, with `headers` besides. */
function event(method: string, path: string, accept = "application/json", headers: Record<string, string> = {}): unknown {
  const rawPath = path.replace("<id>", LOAN_ID).replace("<feed>", FEED).replace("<book>", BOOK_ID);
  return {
    version: "2.0",
    rawPath,
    headers: { accept, ...headers },
    requestContext: { http: { method, path: rawPath }, domainName: "abc.lambda-url.eu-west-1.on.aws" },
    isBase64Encoded: false,
  };
}

/** What the router needs of the services when every use case is a stub: the token's hash and the feed secret's. */
function services(accessTokenSha256?: Buffer, opdsFeedTokenSha256: Buffer | null = FEED_SHA256): Services {
  return { config: { accessTokenSha256, opdsFeedTokenSha256: opdsFeedTokenSha256 ?? undefined } } as unknown as Services;
}

function call(e: unknown) {
  return {
    event: e, requestId: "req-1", log: createLogger("req-1", () => undefined), started: Date.now(),
    timeLeftMs: () => 60_000, workDir: () => Promise.reject(new Error("no work directory in these tests")),
  };
}

/** Use cases that answer their own route id, recording each call. */
function stubs<R extends RouteSpec>(table: readonly R[], called: string[]): UseCases<R> {
  const stub = (id: string): UseCase => async () => {
    called.push(id);
    return jsonAnswer(200, { id });
  };
  return Object.fromEntries(table.map((r) => [r.id, stub(r.id)])) as UseCases<R>;
}

/** The error the router throws for `e`, or fails. */
async function refusal(router: ReturnType<typeof createRouter>, e: unknown, token?: Buffer): Promise<ServiceError> {
  const thrown = await router(services(token), call(e)).then(() => undefined, (err: unknown) => err);
  if (!(thrown instanceof ServiceError)) throw new Error(`expected a ServiceError, got ${String(thrown)}`);
  return thrown;
}

describe("a dummy route registered in a copy of the table", () => {
  const DUMMY = { id: "dummy", method: "PUT", path: "/dummy", auth: "token", produces: "application/json", does: "poke the dummy" } as const satisfies RouteSpec;
  const table = [...ROUTES, DUMMY] as const;
  const router = createRouter(table, { ...USE_CASES, dummy: async () => jsonAnswer(200, { poked: true }) });

  it("must have a use case: a table with a route the use cases lack does not compile", () => {
    // @ts-expect-error USE_CASES has no "dummy" use case
    expect(typeof createRouter(table, USE_CASES)).toBe("function");
  });

  it("is dispatched to its use case", async () => {
    const answer = await router(services(), call(event("PUT", "/dummy")));
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ poked: true });
  });

  it("appears in the 404's routes list", async () => {
    const err = await refusal(router, event("GET", "/nothing"));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.toBody("req-1").routes).toEqual(["GET /", "POST /", "GET /loans", "POST /loans/<id>/return", "DELETE /loans/<id>", "POST /kindle", "PUT /dummy"]);
    expect(err.toBody("req-1").routes).toEqual(routeList(table));
  });

  it("is the Allow of a 405 on its path, and what the message offers", async () => {
    const err = await refusal(router, event("GET", "/dummy"));
    expect(err).toBeInstanceOf(MethodNotAllowedError);
    expect(err.headers).toEqual({ allow: "PUT" });
    expect(err.message).toBe("Method GET is not allowed on /dummy: use PUT to poke the dummy.");
  });

  it("is among the CORS methods", () => {
    expect(corsMethods(table)).toEqual(["GET", "POST", "DELETE", "PUT"]);
    expect(corsMethods()).toEqual(["GET", "POST", "DELETE"]);
  });

  it("needs the token, as its auth says", async () => {
    const hash = createHash("sha256").update(TOKEN).digest();
    expect(await refusal(router, event("PUT", "/dummy"), hash)).toBeInstanceOf(UnauthorizedError);
    const answer = await router(services(hash), call(event("PUT", "/dummy", "application/json", { authorization: `Bearer ${TOKEN}` })));
    expect(answer.statusCode).toBe(200);
  });
});

describe("405 on each path of the table", () => {
  const router = createRouter(ROUTES, stubs(ROUTES, []));
  const paths = [...new Set(ROUTES.map((r) => r.path))];

  it.each(paths)("on %s lists exactly the methods of that path's routes", async (path) => {
    const methods: string[] = [...new Set(ROUTES.filter((r) => r.path === path).map((r) => r.method))];
    for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].filter((m) => !methods.includes(m))) {
      const err = await refusal(router, event(method, path));
      expect(err, `${method} ${path}`).toBeInstanceOf(MethodNotAllowedError);
      expect(err.headers.allow, `${method} ${path}`).toBe(methods.join(", "));
    }
  });

  it.each([
    ["PUT", "/", "GET, POST", "Method PUT is not allowed on /: use GET to open the web page or check health, or POST to convert an ACSM."],
    ["PUT", "/loans", "GET", "Method PUT is not allowed on /loans: use GET to list the loans."],
    ["GET", "/loans/<id>/return", "POST", "Method GET is not allowed on /loans/<id>/return: use POST to return the loan."],
    ["PUT", "/loans/<id>", "DELETE", "Method PUT is not allowed on /loans/<id>: use DELETE to forget the loan."],
  ])("%s %s answers Allow: %s and says what to do instead, its route paths unredacted", async (method, path, allow, message) => {
    // The real handler: its error mapping redacts file paths, never a route's path.
    const config: HandlerConfig = {
      outputBucket: "unused", deviceBucket: "unused", downloadUrlExpirySeconds: 3600, toolsDir: TOOLS_DIR, s3Endpoint: undefined,
      accessTokenSha256: undefined, functionUrlAuth: "NONE",
    };
    const handle = createHandler({ config, stores: {} as never, logSink: () => undefined });
    const context = fakeContext();
    const answer = await handle(event(method, path), context);
    expect(answer.statusCode).toBe(405);
    expect(answer.headers.allow).toBe(allow);
    expect(JSON.parse(answer.body)).toEqual({ error: message, error_type: "MethodNotAllowed", request_id: context.awsRequestId });
  });
});

describe("the token, decided by each route's auth", () => {
  const hash = createHash("sha256").update(TOKEN).digest();

  it("is needed by every route but the page and the OPDS feed's, which carry the feed's own secret", () => {
    expect(ROUTES.filter(isPublic).map((r) => r.id)).toEqual(["page"]);
    expect(ROUTES.filter(isFeed).map((r) => r.id)).toEqual(["opds-feed", "opds-page", "opds-book"]);
  });

  it.each(ROUTES.map((r) => [r.id, r] as const))("%s: answered without the token only when public or with the feed's secret", async (_id, route) => {
    const called: string[] = [];
    const router = createRouter(ROUTES, stubs(ROUTES, called));
    const asked = event(route.method, route.path, route.produces);
    if (isFeed(route)) {
      // The right secret stands for the token; a wrong one is a path the service does not have,
      // which in TOKEN mode asks for the token like any other.
      expect((await router(services(hash), call(asked))).statusCode).toBe(200);
      const wrong = createRouter(ROUTES, stubs(ROUTES, []));
      expect(await wrong(services(hash, createHash("sha256").update("another").digest()), call(asked)).then(() => "answered", (err: unknown) => err)).toBeInstanceOf(UnauthorizedError);
      expect(await wrong(services(undefined, null), call(asked)).then(() => "answered", (err: unknown) => err)).toBeInstanceOf(NotFoundError);
      called.length = 0;
    } else if (isPublic(route)) {
      expect((await router(services(hash), call(asked))).statusCode).toBe(200);
    } else {
      expect(await refusal(router, asked, hash)).toBeInstanceOf(UnauthorizedError);
    }
    // With the token, every route reaches its own use case.
    await router(services(hash), call(event(route.method, route.path, route.produces, { authorization: `Bearer ${TOKEN}` })));
    expect(called).toEqual(isPublic(route) ? [route.id, route.id] : [route.id]);
    expect(called.every((id) => id === route.id)).toBe(true);
  });

  it("is asked before a path or method that has no route is refused", async () => {
    const router = createRouter(ROUTES, stubs(ROUTES, []));
    expect(await refusal(router, event("GET", "/nothing"), hash)).toBeInstanceOf(UnauthorizedError);
    expect(await refusal(router, event("PUT", "/loans"), hash)).toBeInstanceOf(UnauthorizedError);
    const authorized = { authorization: `Bearer ${TOKEN}` };
    expect(await refusal(router, event("GET", "/nothing", "application/json", authorized), hash)).toBeInstanceOf(NotFoundError);
    expect(await refusal(router, event("PUT", "/loans", "application/json", authorized), hash)).toBeInstanceOf(MethodNotAllowedError);
  });

  it("is not asked of a direct invocation (IAM already authorised it), which is the conversion", async () => {
    const called: string[] = [];
    const router = createRouter(ROUTES, stubs(ROUTES, called));
    expect((await router(services(hash), call({ acsm_content: "<x/>" }))).statusCode).toBe(200);
    expect(called).toEqual(["convert"]);
  });
});
