import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { MAX_REQUEST_BYTES, toFunctionUrlEvent, toHttpAnswer, type FunctionUrlEvent, type HttpAnswer } from "./function-url-event";
import { hostLiteral } from "./host-check";

/** The parts of Lambda's context object a handler may read (Lambda Developer Guide, "Lambda context object in Node.js"). */
export interface LocalLambdaContext {
  readonly awsRequestId: string;
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly logGroupName: string;
  readonly logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
}

/** A Lambda handler as the runtime calls it. */
export type LambdaHandler = (event: FunctionUrlEvent, context: LocalLambdaContext) => Promise<unknown>;

/** Options for {@link createFunctionUrlServer}. */
export interface FunctionUrlServerOptions {
  readonly handler: LambdaHandler;
  /** The function's timeout: the context's remaining time counts down from it. @default 900 000 */
  readonly timeoutMs?: number;
  /**
   * Runs first, before the routes and before the body is read: a refusal it returns is the answer,
   * a JSON error in the handler's shape (`error`, `error_type`, `request_id`, more fields from
   * `details`). @default every request admitted
   */
  readonly admit?: (req: IncomingMessage) => Refusal | undefined;
  /** Routes answered before the function (the local download links). */
  readonly routes?: ReadonlyArray<{ prefix: string; serve(req: IncomingMessage, res: ServerResponse): Promise<void> }>;
  /** One line per request and the handler's lines. @default stderr */
  readonly log?: (line: string) => void;
}

/** A request {@link FunctionUrlServerOptions.admit} turned away. */
export interface Refusal {
  readonly statusCode: number;
  readonly errorType: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

const origins = new AsyncLocalStorage<string>();

/**
 * The origin (`http://address:port`) of the address the current request's connection arrived at:
 * the socket's own end, which the client cannot choose — unlike the Host header, which a page on a
 * rebound name or any HTTP client sets to what it likes.
 */
export function currentOrigin(): string | undefined {
  return origins.getStore();
}

/** Lambda's X-Ray style trace id: `Root=1-<8 hex time>-<24 hex random>`. */
function traceId(now: Date): string {
  return `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomBytes(12).toString("hex")}`;
}

function send(res: ServerResponse, answer: HttpAnswer, requestId: string): void {
  if (res.headersSent || res.destroyed) return;
  // Lambda names every Function URL response with the invocation's request id.
  res.writeHead(answer.statusCode, { ...answer.headers, "x-amzn-requestid": requestId, "content-length": answer.body.length });
  res.end(answer.body);
}

/** Lambda's own answer when the function fails or times out, before any handler output. */
function runtimeFailure(): HttpAnswer {
  return { statusCode: 502, headers: { "content-type": "application/json" }, body: Buffer.from('{"Message":"Internal Server Error"}') };
}

/**
 * An HTTP server that does what a Lambda Function URL does around the function: refuses bodies
 * over 6 MB with 413, turns each request into a payload 2.0 event, runs the handler with a context
 * whose remaining time counts down from the function's timeout, and writes the answer back.
 */
export function createFunctionUrlServer(options: FunctionUrlServerOptions): Server {
  const timeoutMs = options.timeoutMs ?? 900_000;
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));

  // Node answers an HTTP/1.1 request without Host with a bare 400 by itself; with an admit check,
  // that check answers it instead (host-check.ts does, with the same 400 as JSON).
  return createServer({ requireHostHeader: options.admit === undefined }, (req, res) => {
    const started = Date.now();
    const requestId = randomUUID();
    const path = (req.url ?? "/").split("?")[0];
    res.on("finish", () => {
      log(`${new Date().toISOString()} ${req.method} ${path} ${res.statusCode} ${Date.now() - started}ms request_id=${requestId}`);
    });
    const refusal = options.admit?.(req);
    if (refusal) {
      log(JSON.stringify({ time: new Date().toISOString(), level: "WARN", message: "request refused", error_type: refusal.errorType, ...refusal.details, request_id: requestId }));
      const body = Buffer.from(JSON.stringify({ error: refusal.message, error_type: refusal.errorType, ...refusal.details, request_id: requestId }));
      // The body is not read: close the connection rather than parse what follows it as a request.
      res.setHeader("connection", "close");
      send(res, { statusCode: refusal.statusCode, headers: { "content-type": "application/json", "cache-control": "no-store" }, body }, requestId);
      req.resume();
      return;
    }
    const origin = `http://${hostLiteral(req.socket.localAddress ?? "127.0.0.1")}:${req.socket.localPort ?? 0}`;

    const route = options.routes?.find((r) => path.startsWith(r.prefix));
    if (route) {
      void origins.run(origin, () => route.serve(req, res)).catch(() => res.destroy());
      return;
    }

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        tooLarge = true;
        chunks.length = 0;
        // Lambda refuses payloads over its invocation limit before running the function.
        const body = Buffer.from(JSON.stringify({ Message: `Request must be smaller than ${MAX_REQUEST_BYTES} bytes for the InvokeFunction operation` }));
        res.setHeader("connection", "close");
        send(res, { statusCode: 413, headers: { "content-type": "application/json", "x-amzn-errortype": "RequestTooLargeException" }, body }, requestId);
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => res.destroy());
    req.on("end", () => {
      if (tooLarge) return;
      const now = new Date();
      const event = toFunctionUrlEvent(
        {
          method: req.method ?? "GET",
          url: req.url ?? "/",
          httpVersion: req.httpVersion,
          rawHeaders: req.rawHeaders,
          sourceIp: (req.socket.remoteAddress ?? "127.0.0.1").replace(/^::ffff:/, ""),
          body: Buffer.concat(chunks),
        },
        { requestId, now, traceId: traceId(now) },
      );
      const deadline = Date.now() + timeoutMs;
      const context: LocalLambdaContext = {
        awsRequestId: requestId,
        functionName: "knock-serve",
        functionVersion: "$LATEST",
        invokedFunctionArn: "arn:aws:lambda:local:000000000000:function:knock-serve",
        memoryLimitInMB: "3008",
        logGroupName: "/aws/lambda/knock-serve",
        logStreamName: "local",
        callbackWaitsForEmptyEventLoop: true,
        getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      };
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((done) => {
        timer = setTimeout(() => done("timeout"), timeoutMs);
      });
      void origins
        .run(origin, () => Promise.race([options.handler(event, context), timedOut]))
        .then((result) => {
          if (result === "timeout") {
            log(JSON.stringify({ time: new Date().toISOString(), level: "ERROR", message: `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`, request_id: requestId }));
            send(res, runtimeFailure(), requestId);
            return;
          }
          const answer = toHttpAnswer(result);
          send(res, answer, requestId);
        })
        .catch((err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          log(JSON.stringify({ time: new Date().toISOString(), level: "ERROR", message: "handler threw", error: e.message, request_id: requestId }));
          send(res, runtimeFailure(), requestId);
        })
        .finally(() => clearTimeout(timer));
    });
  });
}
