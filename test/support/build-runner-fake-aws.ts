// A tiny stand-in for the CodeBuild and CloudWatch Logs APIs on 127.0.0.1, so the real runner process
// can be exercised through the SDK's standard AWS_ENDPOINT_URL variable. Both services speak
// awsJson1_1 (Smithy's "AWS JSON 1.1 protocol"): POST /, the operation in `X-Amz-Target`, JSON in and
// out, timestamps as epoch seconds.
//
// Errors follow that protocol's error shape as the SDK the runner uses reads it (@aws-sdk/client-codebuild
// 3.1142 on @smithy/core 3.41, `submodules/protocols`, loadJsonRpcErrorCode): an HTTP 4xx/5xx whose JSON
// body carries the error name in `__type` and the text in `message`, the name also in the
// `X-Amzn-Errortype` header (read when the body has none). The SDK keeps the part after `#` and before
// `:`, so a bare name, as sent here, is what it matches against the client's modeled exceptions
// (AccountLimitExceededException, InvalidInputException, …). CodeBuild answers its modeled errors with
// status 400 (e.g. "Status Code: 400; Error Code: AccountLimitExceededException" in public reports).

import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the fake received. */
export interface FakeAwsRequest {
  /** Operation name without the service prefix, e.g. `StartBuild`, `GetLogEvents`. */
  readonly operation: string;
  readonly target: string;
  readonly body: Record<string, unknown>;
  readonly headers: IncomingHttpHeaders;
}

/** What a scripted handler answers: a JSON body, or an AWS error. */
export type FakeAwsReply =
  | { readonly body: unknown }
  | { readonly error: { readonly type: string; readonly message: string; readonly status?: number } };

/** Answers one request; `count` is how many requests for this operation came before it (0-based). */
export type FakeAwsHandler = (request: FakeAwsRequest, count: number) => FakeAwsReply;

export interface FakeAws {
  /** Base URL for AWS_ENDPOINT_URL. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: FakeAwsRequest[];
  /** Requests for one operation. */
  calls(operation: string): FakeAwsRequest[];
  close(): Promise<void>;
}

/** Starts the fake on an ephemeral port of 127.0.0.1. Unknown operations get an `UnknownOperationException`. */
export async function startFakeAws(handler: FakeAwsHandler): Promise<FakeAws> {
  const requests: FakeAwsRequest[] = [];
  const counts = new Map<string, number>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      const operation = target.split(".").pop() ?? "";
      const text = Buffer.concat(chunks).toString("utf8");
      const body = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
      const request: FakeAwsRequest = { operation, target, body, headers: req.headers };
      requests.push(request);
      const count = counts.get(operation) ?? 0;
      counts.set(operation, count + 1);

      let reply: FakeAwsReply;
      try {
        reply = handler(request, count);
      } catch (err) {
        reply = { error: { type: "UnknownOperationException", message: String(err), status: 400 } };
      }
      const headers = { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": `req-${requests.length}` };
      if ("error" in reply) {
        res.writeHead(reply.error.status ?? 400, { ...headers, "x-amzn-errortype": reply.error.type });
        res.end(JSON.stringify({ __type: reply.error.type, message: reply.error.message }));
      } else {
        res.writeHead(200, headers);
        res.end(JSON.stringify(reply.body));
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    calls: (operation) => requests.filter((r) => r.operation === operation),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
