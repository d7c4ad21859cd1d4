// The stack tests load index.ts through vitest, which understands TypeScript and ES modules on its own.
// `pulumi up` loads it differently: with ts-node (type checking on) and plain CommonJS require — where
// an ES-module-only dependency (archiver 8) or a type error only the CLI's compiler sees would stop the
// deployment before any resource exists. This loads the program exactly that way, in a child process.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const loader = join(__dirname, "support", "load-like-pulumi.cjs");

function load(config: Record<string, string>): { resources: string[]; exports: string[]; tsNode: string } {
  const run = spawnSync(process.execPath, [loader], {
    env: { ...process.env, KNOCK_TEST_CONFIG: JSON.stringify(config) },
    encoding: "utf8",
    timeout: 120_000,
  });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}");
}

describe("the program as the Pulumi CLI's Node.js runtime loads it", () => {
  it("compiles with Pulumi's ts-node, loads every module with CommonJS require, and registers the stack", () => {
    const result = load({ "aws:region": "us-east-2", "knock-lambda:function_url_auth": "TOKEN" });
    expect(result.tsNode).toMatch(/^ts-node/);
    // source-code carries the archiver-made build context; the token exists only in TOKEN mode.
    expect(result.resources).toEqual(expect.arrayContaining([
      "aws:s3/bucketObjectv2:BucketObjectv2 source-code",
      "command:local:Command knock-lambda-build-run",
      "aws:lambda/function:Function knock-lambda",
      "random:index/randomBytes:RandomBytes knock-access-token",
    ]));
    expect(result.exports).toEqual(expect.arrayContaining(["function_url", "image_uri", "access_url"]));
  }, 150_000);
});
