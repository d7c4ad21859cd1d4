// Holds the image's start-up contract without building it. Lambda runs ENTRYPOINT with CMD as its
// arguments and sets _HANDLER only for .zip functions; aws-lambda-ric 4 reads the handler only from
// _HANDLER. So: ENTRYPOINT is our script, the script exports _HANDLER from its argument and execs
// the client, CMD names the handler, and the handler bundle exports a function by that name.
// (`npm run test:image` checks the same on the built image, started the way Lambda starts it.)
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, posix } from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const lambdaDir = join(__dirname, "..", "..", "lambda");
const dockerfile = readFileSync(join(lambdaDir, "Dockerfile"), "utf8");
const parsed = DockerfileParser.parse(dockerfile);
const instructions = parsed.getInstructions();
const finalStage = instructions.slice(instructions.map((i) => i.getKeyword()).lastIndexOf("FROM") + 1);

function json(instruction: Instruction | undefined): string[] {
  return (instruction as { getJSONStrings?: () => { getJSONValue(): string }[] } | undefined)?.getJSONStrings?.().map((s) => s.getJSONValue()) ?? [];
}

/** [source…, destination] of each COPY in the runtime stage, with its --from (if any). */
function copies(): { from: string | undefined; args: string[] }[] {
  return finalStage
    .filter((i) => i.getKeyword() === "COPY")
    .map((i) => {
      const flags = (i as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags();
      return { from: flags.find((f) => f.getName() === "from")?.getValue() ?? undefined, args: i.getArguments().map((a) => a.getValue()) };
    });
}

const entrypoint = json(parsed.getENTRYPOINTs().at(-1));
const cmd = json(parsed.getCMDs().at(-1));
const entrypointCopy = copies().find((c) => c.from === undefined && c.args.at(-1) === entrypoint[0]);
const scriptPath = join(lambdaDir, entrypointCopy?.args[0] ?? "lambda-entrypoint.sh");
const script = readFileSync(scriptPath, "utf8");
const clientDir = copies().find((c) => c.from !== undefined && /aws-lambda-ric$/.test(c.args.at(-1) ?? ""))?.args.at(-1);

describe("the image's start-up contract (ENTRYPOINT + CMD, as Lambda runs them)", () => {
  it("has the entrypoint script, copied from the build context, as its only ENTRYPOINT word", () => {
    expect(entrypoint).toEqual(["/lambda-entrypoint.sh"]);
    expect(entrypointCopy?.args).toEqual(["lambda-entrypoint.sh", "/lambda-entrypoint.sh"]);
  });

  it("has CMD handler.handler, naming a module in LAMBDA_TASK_ROOT that the handler bundle becomes", () => {
    expect(cmd).toEqual(["handler.handler"]);
    const [moduleName] = cmd[0].split(".");
    const handlerCopy = copies().find((c) => c.from !== undefined && c.args[0].endsWith("dist/handler.js"));
    const destination = handlerCopy?.args.at(-1) ?? "";
    const taskRoot = /LAMBDA_TASK_ROOT=(\S+)/.exec(finalStage.filter((i) => i.getKeyword() === "ENV").map((i) => i.getRawArgumentsContent() ?? "").join(" "))?.[1];
    expect(posix.basename(destination)).toBe(`${moduleName}.js`);
    expect(posix.dirname(destination)).toBe(taskRoot);
  });

  it("has a script that exports _HANDLER from its argument and execs the runtime client the image installs", () => {
    expect(script.startsWith("#!/bin/sh\n")).toBe(true);
    expect(script).toMatch(/^export _HANDLER="\$1"$/m);
    expect(clientDir).toBe("/opt/ric/node_modules/aws-lambda-ric");
    expect(script).toMatch(new RegExp(`^exec node ${clientDir}/index\\.mjs$`, "m"));
    // An sh syntax error would only show when Lambda starts the container.
    expect(spawnSync("sh", ["-n", scriptPath]).status).toBe(0);
  });

  it("exports a function named by CMD from the handler bundle, async as aws-lambda-ric 4 requires", async () => {
    const { build } = (await import(join(lambdaDir, "node_modules", "esbuild"))) as typeof import("esbuild");
    // The same bundle options as lambda/package.json's build script.
    const packageJson = JSON.parse(readFileSync(join(lambdaDir, "package.json"), "utf8")) as { scripts: { build: string } };
    expect(packageJson.scripts.build).toContain("esbuild src/handler.ts --bundle --platform=node --target=node24 --format=cjs");
    const result = await build({
      entryPoints: [join(lambdaDir, "src", "handler.ts")],
      bundle: true,
      platform: "node",
      target: "node24",
      format: "cjs",
      write: false,
      logLevel: "silent",
    });
    const dir = mkdtempSync(join(tmpdir(), "knock-bundle-"));
    try {
      const file = join(dir, `${cmd[0].split(".")[0]}.js`);
      writeFileSync(file, result.outputFiles[0].contents);
      const bundle = createRequire(__filename)(file) as Record<string, unknown>;
      const exported = bundle[cmd[0].split(".")[1]];
      expect(typeof exported).toBe("function");
      expect((exported as () => unknown).constructor.name).toBe("AsyncFunction");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("lambda/lambda-entrypoint.sh, run under sh with a fake node", () => {
  let bin: string;

  beforeAll(() => {
    // The fake "node" reports its environment, arguments and parent, so the test can tell that
    // the script replaced itself (exec) rather than running node as its child.
    bin = mkdtempSync(join(tmpdir(), "knock-entrypoint-"));
    writeFileSync(
      join(bin, "node"),
      '#!/bin/sh\nprintf \'_HANDLER=%s\\n\' "${_HANDLER-<unset>}"\nprintf \'arg=%s\\n\' "$@"\nprintf \'ppid=%s\\n\' "$PPID"\n',
    );
    chmodSync(join(bin, "node"), 0o755);
  });
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync("sh", [scriptPath, ...args], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, ...env } });

  it("sets _HANDLER from its argument even when Lambda's environment has _HANDLER empty, then execs node on the client", () => {
    const r = run(["handler.handler"], { _HANDLER: "" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      "_HANDLER=handler.handler",
      "arg=/opt/ric/node_modules/aws-lambda-ric/index.mjs",
      `ppid=${process.pid}`,
      "",
    ]);
  });

  it("exports _HANDLER when the environment has none, and replaces a stale one", () => {
    expect(run(["handler.handler"]).stdout).toContain("_HANDLER=handler.handler\n");
    expect(run(["handler.handler"], { _HANDLER: "index.handler" }).stdout).toContain("_HANDLER=handler.handler\n");
  });

  it("refuses to start without exactly one argument, with AWS's status 142 and a message", () => {
    for (const args of [[], ["handler.handler", "extra"]]) {
      const r = run(args, { _HANDLER: "" });
      expect(r.status).toBe(142);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/expected exactly one argument, the handler/);
    }
  });
});
