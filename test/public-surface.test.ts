// The function's public surface (issue 18): the Pulumi program, the client and the scripts import
// from lambda/src only through lambda/src/public.ts. The project's own ESLint configuration refuses
// anything else; this lints snippets with it, as `npx eslint .` would lint such a file.
import { join } from "node:path";
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..");
const eslint = new ESLint({ cwd: ROOT, overrideConfigFile: join(ROOT, "eslint.config.mjs") });

/** The no-restricted-imports messages ESLint gives `code` as the file `path` (relative to the project). */
async function refusals(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  return result.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("imports from lambda/src", () => {
  it.each([
    ["client/serve/example.ts", 'import { createHandler } from "../../lambda/src/handler";\nvoid createHandler;\n'],
    ["client/commands/example.ts", 'import type { HandlerConfig } from "../../lambda/src/config";\nexport type C = HandlerConfig;\n'],
    ["client/lib/example.ts", 'export { SETTINGS } from "../../lambda/src/contract/settings";\n'],
    ["client/lib/example.ts", 'export * from "../../lambda/src/contract";\n'],
    ["infra/example.ts", 'import { deviceStore } from "../lambda/src/device";\nvoid deviceStore;\n'],
    ["config.ts", 'import { storesOn } from "./lambda/src/stores";\nvoid storesOn;\n'],
    ["index.ts", 'import { SETTINGS } from "./lambda/src/public/../contract";\nvoid SETTINGS;\n'],
    ["scripts/example.mjs", 'import { loadConfig } from "../lambda/src/config.ts";\nvoid loadConfig;\n'],
  ])("%s: a deep import is refused, naming lambda/src/public.ts", async (path, code) => {
    const messages = await refusals(path, code);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain("Import from lambda/src/public.ts");
  });

  it.each([
    ["client/serve/example.ts", 'import { createHandler, storesOn, type HandlerConfig } from "../../lambda/src/public";\nvoid createHandler; void storesOn;\nexport type C = HandlerConfig;\n'],
    ["infra/example.ts", 'import { SETTINGS } from "../lambda/src/public";\nvoid SETTINGS;\n'],
    ["config.ts", 'export { checkInteger } from "./lambda/src/public";\n'],
  ])("%s: the public surface is allowed", async (path, code) => {
    expect(await refusals(path, code)).toEqual([]);
  });

  it("leaves the function's own modules and the tests free to import anything in lambda/src", async () => {
    expect(await refusals("lambda/src/example.ts", 'import { deviceStore } from "./device";\nvoid deviceStore;\n')).toEqual([]);
    expect(await refusals("test/handler/example.test.ts", 'import { deviceStore } from "../../lambda/src/device";\nvoid deviceStore;\n')).toEqual([]);
  });

  it("is kept by every file of the program, the client and the scripts today", async () => {
    const results = await eslint.lintFiles(["client", "infra", "index.ts", "config.ts", "scripts"]);
    const deep = results.flatMap((r) => r.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => `${r.filePath}:${m.line}`));
    expect(deep).toEqual([]);
  }, 60_000);
});
