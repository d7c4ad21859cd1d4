// A stand-in for the Lambda Runtime API (version 2018-06-01) on 127.0.0.1, so a runtime interface
// client can be run outside Lambda and driven one invocation at a time. It follows AWS's reference
// "Using the Lambda runtime API for custom runtimes" (AWS Lambda Developer Guide, runtimes-api):
//   GET  /2018-06-01/runtime/invocation/next            long-polls; answers the event with the
//        Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn and -Trace-Id headers
//   POST /2018-06-01/runtime/invocation/{id}/response   202 Accepted
//   POST /2018-06-01/runtime/invocation/{id}/error      202 Accepted (Lambda-Runtime-Function-Error-Type)
//   POST /2018-06-01/runtime/init/error                 202 Accepted
// An unknown request id answers 400, anything else 404.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const PREFIX = "/2018-06-01/runtime";

/** What the runtime sent back for one invocation. */
export type InvocationOutcome =
  | { readonly kind: "response"; readonly requestId: string; readonly body: string }
  | { readonly kind: "error"; readonly requestId: string; readonly errorType: string | undefined; readonly body: string };

/** An error the runtime reported while initialising (`/runtime/init/error`). */
export interface InitError {
  readonly errorType: string | undefined;
  readonly body: string;
}

/** Options for {@link RuntimeApi.invoke}. */
export interface InvokeOptions {
  /** Function timeout: sets `Lambda-Runtime-Deadline-Ms`. @default 60000 */
  readonly timeoutMs?: number;
}

/** A running stand-in Runtime API. */
export interface RuntimeApi {
  /** `host:port`, the value for `AWS_LAMBDA_RUNTIME_API`. */
  readonly address: string;
  /** The ARN handed out in `Lambda-Runtime-Invoked-Function-Arn`. */
  readonly functionArn: string;
  /** Resolves when the runtime first asks for an invocation, i.e. its init phase is over. */
  readonly ready: Promise<void>;
  /** Init errors posted so far. */
  readonly initErrors: readonly InitError[];
  /** Called on every init error as it arrives. */
  onInitError(listener: (error: InitError) => void): void;
  /** Queues an event for the runtime and resolves with its response or error. */
  invoke(event: unknown, options?: InvokeOptions): Promise<InvocationOutcome>;
  close(): Promise<void>;
}

interface Pending {
  readonly requestId: string;
  readonly payload: string;
  readonly timeoutMs: number;
  readonly settle: (outcome: InvocationOutcome) => void;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => done(Buffer.concat(chunks).toString("utf8")));
    req.on("error", fail);
  });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/**
 * Starts the stand-in on 127.0.0.1 (a random port unless `port` is given).
 * @param functionName used in the invoked function's ARN. @default "knock-lambda-image-test"
 */
export async function startRuntimeApi(functionName = "knock-lambda-image-test", port = 0): Promise<RuntimeApi> {
  const functionArn = `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`;
  const queue: Pending[] = [];
  const waiting: ServerResponse[] = [];
  const inFlight = new Map<string, Pending>();
  const initErrors: InitError[] = [];
  const initListeners: ((error: InitError) => void)[] = [];
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((done) => (markReady = done));

  // Hands the oldest queued event to the oldest waiting /next request, if both exist.
  const dispatch = (): void => {
    while (queue.length > 0 && waiting.length > 0) {
      const res = waiting.shift()!;
      if (res.destroyed) continue;
      const next = queue.shift()!;
      inFlight.set(next.requestId, next);
      res.writeHead(200, {
        "content-type": "application/json",
        "lambda-runtime-aws-request-id": next.requestId,
        "lambda-runtime-deadline-ms": String(Date.now() + next.timeoutMs),
        "lambda-runtime-invoked-function-arn": functionArn,
        "lambda-runtime-trace-id": `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)};Parent=${randomUUID().replace(/-/g, "").slice(0, 16)};Sampled=0`,
      });
      res.end(next.payload);
    }
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? "").split("?")[0];
      if (req.method === "GET" && path === `${PREFIX}/invocation/next`) {
        markReady();
        waiting.push(res);
        dispatch();
        return;
      }
      if (req.method === "POST" && path === `${PREFIX}/init/error`) {
        const error: InitError = { errorType: req.headers["lambda-runtime-function-error-type"] as string | undefined, body: await readBody(req) };
        initErrors.push(error);
        for (const listener of initListeners) listener(error);
        reply(res, 202, { status: "OK" });
        return;
      }
      const match = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(path);
      if (req.method === "POST" && match) {
        const [, requestId, what] = match;
        const body = await readBody(req);
        const pending = inFlight.get(requestId);
        if (!pending) {
          reply(res, 400, { errorMessage: `Invalid request ID: ${requestId}`, errorType: "InvalidRequestID" });
          return;
        }
        inFlight.delete(requestId);
        reply(res, 202, { status: "OK" });
        pending.settle(
          what === "response"
            ? { kind: "response", requestId, body }
            : { kind: "error", requestId, errorType: req.headers["lambda-runtime-function-error-type"] as string | undefined, body },
        );
        return;
      }
      req.resume();
      reply(res, 404, { errorMessage: `No such route: ${req.method} ${path}`, errorType: "NotFound" });
    })().catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, { errorMessage: String(err), errorType: "StandInFailure" });
    });
  });
  // The runtime's /next request stays open until there is an event: no server-side timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 0;
  await new Promise<void>((done) => server.listen(port, "127.0.0.1", done));
  const { port: boundPort } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${boundPort}`,
    functionArn,
    ready,
    initErrors,
    onInitError(listener) {
      initListeners.push(listener);
    },
    invoke(event, options = {}) {
      return new Promise<InvocationOutcome>((settle) => {
        queue.push({ requestId: randomUUID(), payload: JSON.stringify(event), timeoutMs: options.timeoutMs ?? 60_000, settle });
        dispatch();
      });
    },
    async close() {
      for (const res of waiting.splice(0)) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
