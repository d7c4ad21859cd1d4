// The Lambda entry point's own behaviour, without the handler behind it: the configuration is read
// and the handler built on the first invocation and reused while the container is warm; a
// configuration that cannot be read is answered as the service's 500 Misconfigured, and tried again.
import { afterEach, describe, expect, it } from "vitest";
import type { HandlerConfig } from "../../lambda/src/config";
import { entryPoint, type Handler } from "../../lambda/src/handler";
import { fakeContext } from "./harness";

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

const complete = { OUTPUT_BUCKET: "books", DEVICE_CREDENTIALS_BUCKET: "devices", LIBGOUROU_BIN_DIR: "/opt/libgourou/bin" };

/** A build that counts its calls and makes a handler answering 200 with the bucket it was configured with. */
function countingBuild(): { build: (config: HandlerConfig) => Handler; configs: HandlerConfig[] } {
  const configs: HandlerConfig[] = [];
  const build = (config: HandlerConfig): Handler => {
    configs.push(config);
    return async () => ({ statusCode: 200, headers: {}, body: config.outputBucket });
  };
  return { build, configs };
}

describe("entryPoint", () => {
  it("builds the handler once, on the first invocation, and reuses it while the container is warm", async () => {
    Object.assign(process.env, complete);
    const { build, configs } = countingBuild();
    const lambda = entryPoint(build);
    expect(configs).toHaveLength(0);
    for (let i = 0; i < 3; i++) expect((await lambda({}, fakeContext() as never)).body).toBe("books");
    expect(configs).toHaveLength(1);
    expect(configs[0]).toMatchObject({ outputBucket: "books", deviceBucket: "devices", toolsDir: "/opt/libgourou/bin" });
  });

  it("answers a configuration it cannot read with 500 Misconfigured naming the variable, builds nothing, and tries again next time", async () => {
    Object.assign(process.env, complete);
    delete process.env.OUTPUT_BUCKET;
    const { build, configs } = countingBuild();
    const lambda = entryPoint(build);
    const res = await lambda({}, { awsRequestId: "req-7", getRemainingTimeInMillis: () => 60_000 } as never);
    expect(res.statusCode).toBe(500);
    expect(res.headers).toEqual({ "content-type": "application/json", "cache-control": "no-store" });
    expect(JSON.parse(res.body)).toEqual({
      error: "The function is misconfigured: Environment variable OUTPUT_BUCKET is required but not set; the deployment must provide it.",
      error_type: "Misconfigured",
      request_id: "req-7",
    });
    expect(configs).toHaveLength(0);
    // Fixed (a new deployment of the environment reaches warm containers only as new ones, but the
    // entry point does not keep its failure either way).
    process.env.OUTPUT_BUCKET = "books";
    expect((await lambda({}, fakeContext() as never)).statusCode).toBe(200);
    expect(configs).toHaveLength(1);
  });

  it("answers a handler that cannot be built the same way", async () => {
    Object.assign(process.env, complete);
    const lambda = entryPoint(() => {
      throw new Error("no S3 client for this region");
    });
    const res = await lambda({}, { awsRequestId: "req-8", getRemainingTimeInMillis: () => 60_000 } as never);
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({ error: "The function is misconfigured: no S3 client for this region", error_type: "Misconfigured" });
  });
});
