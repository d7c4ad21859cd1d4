// A converter tool missing from the image, through the real handler: the answer names the tool and
// says what to do in the cloud (the image build, pulumi up), and carries the tool's name so that
// `knock serve` can say it for its tools folder instead (test/client/messages.test.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler } from "../../lambda/src/handler";
import { loadConfig } from "../../lambda/src/config";
import { fakeContext, handlerEnv, makeAcsm, startLocalS3, urlEvent, type LocalS3 } from "./harness";

let s3: LocalS3;
const scratch: string[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startLocalS3();
  Object.assign(process.env, handlerEnv(s3));
});

afterAll(async () => {
  await s3.close();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

describe("a converter tool missing from the image", () => {
  it("is answered 500 ConverterMissing naming the tool, the image build and pulumi up", async () => {
    const empty = mkdtempSync(join(tmpdir(), "knock-no-tools-"));
    const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
    scratch.push(empty, tmpRoot);
    const handle = createHandler({ config: { ...loadConfig(), toolsDir: empty }, tmpRoot, logSink: () => undefined });
    const res = await handle(urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm() })), fakeContext());
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({
      error_type: "ConverterMissing",
      tool: "adept_activate",
      error: "The converter tool adept_activate is missing from the function's image: the image build must install it (lambda/Dockerfile); fix it and deploy again with pulumi up.",
    });
  });
});
