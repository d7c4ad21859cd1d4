import { afterEach, expect, it, vi } from "vitest";

// The exported entry point caches its configuration in module state, so this file gets the module
// fresh and sets the environment first.
const saved = { ...process.env };
afterEach(() => { process.env = { ...saved }; vi.resetModules(); });

it("answers a missing environment variable with a JSON 500 naming it, not a runtime error", async () => {
  delete process.env.OUTPUT_BUCKET;
  process.env.DEVICE_CREDENTIALS_BUCKET = "devices";
  process.env.LIBGOUROU_BIN_DIR = "/opt/libgourou/bin";
  const lines: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => { lines.push(String(chunk)); return true; });
  vi.spyOn(console, "log").mockImplementation((...args) => { lines.push(args.join(" ")); });
  const { handler } = await import("../../lambda/src/handler");

  const res = await handler({ requestContext: { http: { method: "GET" } } }, { awsRequestId: "req-9", getRemainingTimeInMillis: () => 60_000 } as never);
  vi.restoreAllMocks();

  expect(res.statusCode).toBe(500);
  const body = JSON.parse(res.body);
  expect(body).toMatchObject({ error_type: "Misconfigured", request_id: "req-9" });
  expect(body.error).toContain("OUTPUT_BUCKET");
  expect(res.body).not.toMatch(/\bat .+\.ts:\d+/);
});
