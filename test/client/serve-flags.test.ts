// `knock serve`'s flags that stand for a deployment setting (the settings table's `serveFlag`) take
// their range from the table, so a local service accepts exactly what a stack does. Parsed by the
// real program (client/main.ts) with commander, the serve command's action replaced by a probe.
import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { program } from "../../client/main";
import { SETTINGS, type SettingSpec } from "../../lambda/src/contract";
import { knock } from "./helpers";

/** Every setting `knock serve` has a flag for, with its spec. */
const withFlags = Object.entries(SETTINGS as Record<string, SettingSpec>).filter(([, spec]) => spec.serveFlag !== undefined);

/** What `knock serve ARGS` parses to (the action's options), or the usage error commander printed. */
async function parseServe(args: string[]): Promise<{ options?: Record<string, unknown>; error: string }> {
  const knockProgram = program();
  const serve = knockProgram.commands.find((c) => c.name() === "serve")!;
  let options: Record<string, unknown> | undefined;
  let error = "";
  serve.action((opts: Record<string, unknown>) => {
    options = opts;
  });
  serve.configureOutput({ writeErr: (text) => void (error += text), writeOut: () => undefined });
  try {
    await knockProgram.parseAsync(["serve", ...args], { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
  }
  return { options, error };
}

describe("knock serve's setting flags", () => {
  it("exist for lambda_timeout and download_url_expiry_seconds", () => {
    expect(withFlags.map(([key, spec]) => [key, spec.serveFlag])).toEqual([
      ["lambda_timeout", "--timeout"],
      ["download_url_expiry_seconds", "--link-expiry"],
    ]);
  });

  it.each(withFlags)("%s: accepts its minimum and maximum, refuses one beyond either, and defaults to its default", async (_key, spec) => {
    if (spec.type !== "integer") throw new Error("a serve flag stands for an integer setting");
    const flag = spec.serveFlag!;
    const attribute = program().commands.find((c) => c.name() === "serve")!.options.find((o) => o.long === flag)!.attributeName();
    const refusal = `error: option '${flag} <seconds>' argument '%s' is invalid. ${flag} must be a whole number from ${spec.min} to ${spec.max}.`;

    for (const value of [spec.min, spec.max]) {
      const parsed = await parseServe([flag, String(value)]);
      expect(parsed.error, `${flag} ${value}`).toBe("");
      expect(parsed.options?.[attribute], `${flag} ${value}`).toBe(value);
    }
    for (const value of [spec.min - 1, spec.max + 1]) {
      const parsed = await parseServe([flag, String(value)]);
      expect(parsed.options, `${flag} ${value}`).toBeUndefined();
      expect(parsed.error, `${flag} ${value}`).toContain(refusal.replace("%s", String(value)));
    }
    expect((await parseServe([])).options?.[attribute]).toBe(spec.default);
  });

  it("the knock process says what --link-expiry takes and exits 2 (usage)", async () => {
    const run = await knock(["serve", "--link-expiry", "59"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--link-expiry must be a whole number from 60 to 604800.");
  });
});
