// The `knock` launcher (client/bin/knock.js) and its bundle (scripts/build-client.mjs): it runs the
// bundle while it matches the sources, and the TypeScript sources otherwise. Each test works on a
// scratch copy of the project (client/, lambda/src/, the build script; node_modules linked entry by
// entry), so it can build, delete and edit without touching the checkout other tests run from.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { makeAcsm, TOOLS_DIR } from "../handler/harness";
import { cleanup, cliEnv, scratchDir, type KnockRun } from "./helpers";

const ROOT = resolve(__dirname, "../..");
const scratch: string[] = [];
const children: ReturnType<typeof spawn>[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  cleanup(scratch);
});

/** A copy of the project that `knock` and the build script run from, with its dependencies linked. */
interface Copy {
  readonly root: string;
  readonly bin: string;
  /** Removes every linked dependency, leaving only what the build wrote (node_modules/.knock). */
  unlinkDependencies(): void;
}

function copyProject(): Copy {
  const root = scratchDir("knock-bundle-", scratch);
  for (const path of ["package.json", "tsconfig.json", "client", "scripts/build-client.mjs", "lambda/package.json", "lambda/tsconfig.json", "lambda/src"]) {
    cpSync(join(ROOT, path), join(root, path), { recursive: true, filter: (src) => !src.includes("node_modules") });
  }
  // One link per entry, so the build's node_modules/.knock is the copy's own folder.
  mkdirSync(join(root, "node_modules"));
  const linked: string[] = [];
  for (const name of readdirSync(join(ROOT, "node_modules")).filter((n) => !n.startsWith("."))) {
    symlinkSync(join(ROOT, "node_modules", name), join(root, "node_modules", name));
    linked.push(join(root, "node_modules", name));
  }
  symlinkSync(join(ROOT, "lambda/node_modules"), join(root, "lambda/node_modules"));
  linked.push(join(root, "lambda/node_modules"));
  return {
    root,
    bin: join(root, "client/bin/knock.js"),
    unlinkDependencies: () => linked.forEach((link) => rmSync(link)),
  };
}

function build(copy: Copy): void {
  const run = spawnSync(process.execPath, [join(copy.root, "scripts/build-client.mjs")], { encoding: "utf8" });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/^built the knock client: node_modules\/\.knock\/ knock\.cjs .* MiB, vendor\.cjs .* MiB, from \d+ sources, in [\d.]+ s\n$/);
}

function startCopy(copy: Copy, args: string[]): { child: ReturnType<typeof spawn>; done: Promise<KnockRun> } {
  const child = spawn(process.execPath, [copy.bin, ...args], { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<KnockRun>((resolveRun) => child.on("close", (code, signal) => resolveRun({ code, signal, stdout, stderr })));
  return { child, done };
}

const knockIn = (copy: Copy, args: string[]): Promise<KnockRun> => startCopy(copy, args).done;

/** `knock serve` from the copy on a free port with the stand-in tools; resolves with its URL. */
async function serveFrom(copy: Copy): Promise<string> {
  const { child, done } = startCopy(copy, ["serve", "--port", "0", "--tools", TOOLS_DIR, "--data", scratchDir("knock-bundle-data-", scratch)]);
  const lines = createInterface({ input: child.stderr! });
  return new Promise<string>((resolveUrl, reject) => {
    lines.on("line", (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) resolveUrl(m[1]);
    });
    void done.then((run) => reject(new Error(`knock serve exited with ${run.code}: ${run.stderr}`)));
  });
}

/** What `knock --debug` says it ran: the bundle's path, or why it ran the sources instead. */
function ran(run: KnockRun): string {
  return /^knock: running (.*)$/m.exec(run.stderr)?.[1] ?? `(nothing said; stderr: ${run.stderr})`;
}

describe("the knock bundle", () => {
  it("runs --help, serve, health and convert from the bundle alone, with no package or TypeScript loader left", async () => {
    const copy = copyProject();
    build(copy);
    copy.unlinkDependencies();

    const help = await knockIn(copy, ["--debug", "--help"]);
    expect(ran(help)).toBe(join(copy.root, "node_modules/.knock/knock.cjs"));
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: knock [options] [command]");

    // The handler is in the bundle too, and the packages it loads on first use (the ACSM parser) come
    // from vendor.cjs: an expired ACSM is parsed and refused before any converter tool runs.
    const url = await serveFrom(copy);
    const health = await knockIn(copy, ["health", "--url", url]);
    expect(health.stderr).not.toContain("unexpected error");
    expect(health.stdout).toContain("status: ok");
    expect(health.code).toBe(0);

    const inputs = scratchDir("knock-bundle-in-", scratch);
    writeFileSync(join(inputs, "old.acsm"), makeAcsm({ expiration: "2020-01-01T00:00:00+00:00" }));
    const convert = await knockIn(copy, ["convert", "--url", url, "--out", inputs, join(inputs, "old.acsm")]);
    expect(convert.stderr).toMatch(/old\.acsm: AcsmExpired: .*2020/);
    expect(convert.code).toBe(1);
  }, 120_000);

  it("runs the TypeScript sources when no bundle has been built", async () => {
    const copy = copyProject();

    const run = await knockIn(copy, ["--debug", "--help"]);

    expect(ran(run)).toMatch(/^the TypeScript sources: no bundle has been built \(node_modules\/\.knock\/inputs\.json is missing\)\. /);
    // The way to rebuild names the checkout's script, so it works from whatever folder knock ran in.
    expect(ran(run).endsWith(`To rebuild: node ${join(copy.root, "scripts/build-client.mjs")}`)).toBe(true);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Usage: knock [options] [command]");
  }, 120_000);

  it("runs the TypeScript sources when the bundle is gone or is not the one built", async () => {
    const copy = copyProject();
    build(copy);
    const bundle = join(copy.root, "node_modules/.knock/vendor.cjs");
    writeFileSync(bundle, readFileSync(bundle, "utf8") + "\n// edited\n");

    const edited = await knockIn(copy, ["--debug", "--help"]);
    expect(ran(edited)).toMatch(/^the TypeScript sources: node_modules\/\.knock\/vendor\.cjs is missing or is not the one inputs\.json describes/);
    expect(edited.code).toBe(0);

    rmSync(join(copy.root, "node_modules/.knock/knock.cjs"));
    const gone = await knockIn(copy, ["--debug", "--help"]);
    expect(ran(gone)).toMatch(/^the TypeScript sources: node_modules\/\.knock\/knock\.cjs is missing/);
    expect(gone.code).toBe(0);
  }, 120_000);

  it("runs the edited sources, not the stale bundle, once a client source changes", async () => {
    const copy = copyProject();
    build(copy);
    const main = join(copy.root, "client/main.ts");
    const before = readFileSync(main, "utf8");
    expect(before).toContain("Convert Adobe ACSM files");
    writeFileSync(main, before.replace("Convert Adobe ACSM files", "Edited after the build: convert Adobe ACSM files"));

    const run = await knockIn(copy, ["--debug", "--help"]);

    expect(ran(run)).toMatch(/^the TypeScript sources: client\/main\.ts changed since the bundle was built/);
    expect(run.stdout).toContain("Edited after the build: convert Adobe ACSM files");
    expect(run.code).toBe(0);
  }, 120_000);

  it("notices a handler source put back with an older time, and runs the bundle again once rebuilt", async () => {
    const copy = copyProject();
    build(copy);
    // Same content and size, older mtime: what restoring a file from a backup or an archive does.
    const page = join(copy.root, "lambda/src/page.ts");
    const old = new Date(statSync(page).mtimeMs - 86_400_000);
    utimesSync(page, old, old);

    const stale = await knockIn(copy, ["--debug", "--help"]);
    expect(ran(stale)).toMatch(/^the TypeScript sources: lambda\/src\/page\.ts changed since the bundle was built/);

    build(copy);
    const fresh = await knockIn(copy, ["--debug", "--help"]);
    expect(ran(fresh)).toBe(join(copy.root, "node_modules/.knock/knock.cjs"));
    expect(fresh.code).toBe(0);
  }, 120_000);
});
