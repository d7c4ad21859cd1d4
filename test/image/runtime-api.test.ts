// The stand-in Runtime API the image test drives the container with, spoken to the way a runtime
// interface client speaks to Lambda's (AWS Lambda Developer Guide, "Using the Lambda runtime API
// for custom runtimes").
import { afterEach, describe, expect, it } from "vitest";
import { startRuntimeApi, type RuntimeApi } from "../support/runtime-api";

let api: RuntimeApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const base = (a: RuntimeApi) => `http://${a.address}/2018-06-01/runtime`;

describe("the stand-in Lambda Runtime API", () => {
  it("hands an invocation to /next with Lambda's headers and resolves with the posted response", async () => {
    api = await startRuntimeApi("fn");
    let ready = false;
    void api.ready.then(() => (ready = true));
    const invokedAt = Date.now();
    const outcome = api.invoke({ hello: "world" }, { timeoutMs: 5_000 });

    const next = await fetch(`${base(api)}/invocation/next`);
    expect(ready).toBe(true);
    expect(next.status).toBe(200);
    expect(await next.json()).toEqual({ hello: "world" });
    const id = next.headers.get("lambda-runtime-aws-request-id")!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const deadline = Number(next.headers.get("lambda-runtime-deadline-ms"));
    // The timeout from when /next handed the invocation out: after invoke, before now.
    expect(deadline).toBeGreaterThanOrEqual(invokedAt + 5_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 5_000);
    expect(next.headers.get("lambda-runtime-invoked-function-arn")).toBe("arn:aws:lambda:us-east-1:123456789012:function:fn");
    expect(next.headers.get("lambda-runtime-trace-id")).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/);

    const posted = await fetch(`${base(api)}/invocation/${id}/response`, { method: "POST", body: '{"statusCode":200}' });
    expect(posted.status).toBe(202);
    expect(await outcome).toEqual({ kind: "response", requestId: id, body: '{"statusCode":200}' });
    // A second answer for the same invocation is refused.
    expect((await fetch(`${base(api)}/invocation/${id}/response`, { method: "POST", body: "{}" })).status).toBe(400);
  });

  it("holds /next open until there is an event", async () => {
    api = await startRuntimeApi();
    const next = fetch(`${base(api)}/invocation/next`);
    const early = await Promise.race([next.then(() => "answered"), new Promise((done) => setTimeout(() => done("waiting"), 200))]);
    expect(early).toBe("waiting");
    const outcome = api.invoke({ n: 1 });
    const res = await next;
    const id = res.headers.get("lambda-runtime-aws-request-id")!;
    await fetch(`${base(api)}/invocation/${id}/error`, {
      method: "POST",
      headers: { "lambda-runtime-function-error-type": "Runtime.HandlerError" },
      body: '{"errorMessage":"boom"}',
    });
    expect(await outcome).toEqual({ kind: "error", requestId: id, errorType: "Runtime.HandlerError", body: '{"errorMessage":"boom"}' });
  });

  it("records init errors and tells listeners", async () => {
    api = await startRuntimeApi();
    const seen: string[] = [];
    api.onInitError((e) => seen.push(e.body));
    const res = await fetch(`${base(api)}/init/error`, {
      method: "POST",
      headers: { "lambda-runtime-function-error-type": "Runtime.ImportModuleError" },
      body: '{"errorMessage":"Cannot find module"}',
    });
    expect(res.status).toBe(202);
    expect(api.initErrors).toEqual([{ errorType: "Runtime.ImportModuleError", body: '{"errorMessage":"Cannot find module"}' }]);
    expect(seen).toEqual(['{"errorMessage":"Cannot find module"}']);
    expect((await fetch(`${base(api)}/invocation/unknown`)).status).toBe(404);
  });
});
