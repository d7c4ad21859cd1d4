// The benchmarks, the image test and `npm run demo` are plain Node scripts (node --import tsx) that
// share the tests' helpers. Vitest refuses to be loaded outside its runner, so a helper those scripts
// import must not import vitest — this loads each one in a plain Node process, as the scripts do.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..");

describe("helpers shared with the npm run scripts", () => {
  it.each(["test/handler/harness.ts", "test/client/helpers.ts"])("%s loads outside vitest", (helper) => {
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", `import(${JSON.stringify(join(ROOT, helper))}).then(() => console.log("loaded"))`], {
      cwd: ROOT, encoding: "utf8", timeout: 120_000,
    });
    expect(run.stderr).not.toContain("Vitest cannot be imported");
    expect(run.stdout.trim()).toBe("loaded");
    expect(run.status).toBe(0);
  }, 150_000);
});
