// The README's transcripts are what `npm run demo` gives: each `$ npx knock …` line of its
// ```console blocks runs, in order, on a terminal (util-linux `script`) against the demo's service,
// answering `[y/N]` as the transcript does, and what the terminal then shows must be the
// transcript's lines. Only what differs from run to run is left out of the comparison: request ids,
// times, the demo's folder and port, and the dates, which are compared as days after the day the
// demo started (the README names the day its run started).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, KNOCK_BIN } from "./client/helpers";
import { DEMO_PORT, startDemo, transcriptCommands, type Demo } from "./client/demo";
import { fences } from "./support/markdown";
import { terminalScreen } from "./support/terminal-screen";

const README = readFileSync(resolve(__dirname, "../README.md"), "utf8");
const README_URL = `http://127.0.0.1:${DEMO_PORT}`;

/** One `$ command` of a transcript and the lines shown after it. */
interface Step {
  readonly command: string;
  readonly expected: string[];
}

/** The transcripts: the ```console blocks that run `npx knock`, as steps. */
function transcripts(): Step[][] {
  return fences(README)
    .filter((f) => f.info === "console" && f.text.includes("$ npx knock "))
    .map((f) => {
      const steps: { command: string; expected: string[] }[] = [];
      for (const line of f.text.replace(/\n$/, "").split("\n")) {
        if (line.startsWith("$ ")) steps.push({ command: line.slice(2), expected: [] });
        else steps[steps.length - 1].expected.push(line);
      }
      return steps;
    });
}

/** The day the README's demo run started ("`npm run demo` on a terminal, on 2026-12-03"). */
function readmeDay(): Date {
  const m = /`npm run demo` on a terminal, on (\d{4}-\d{2}-\d{2})/.exec(README);
  if (!m) throw new Error('README.md does not say on which day its transcripts were made ("`npm run demo` on a terminal, on YYYY-MM-DD")');
  return new Date(`${m[1]}T00:00:00Z`);
}

const DAY_MS = 86_400_000;
const startOfDay = (d: Date): number => Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());

/** The lines with what differs between runs replaced by what it stands for. */
function normalize(lines: readonly string[], day: Date, folder: RegExp): string[] {
  return lines.map((line) =>
    line
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<request id>")
      .replace(/\(\d+(?:\.\d+)?s\)/g, "(<time>)")
      .replace(folder, "<demo folder>")
      .replace(/(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}) UTC/g, (_, date: string, time: string) => {
        const days = Math.round((Date.parse(`${date}T00:00:00Z`) - startOfDay(day)) / DAY_MS);
        return `<day ${days >= 0 ? "+" : ""}${days} ${time} UTC>`;
      }),
  );
}

/**
 * Runs `command` as a reader would type it, with bash on a terminal: `npx knock` is this checkout's
 * `knock` (the same bin npx runs, without npx's own spinner), `$DEMO` the demo's folder.
 */
function onTerminal(command: string, demo: Demo, answer: string | undefined): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "knock-transcript-"));
  const script = join(dir, "step.sh");
  writeFileSync(script, `knock() { "$KNOCK_NODE" "$KNOCK_BIN_PATH" "$@"; }\n${command.replaceAll("npx knock ", "knock ").replaceAll(README_URL, demo.url)}\n`);
  const env = cliEnv({ DEMO: demo.dir, KNOCK_NODE: process.execPath, KNOCK_BIN_PATH: KNOCK_BIN, NO_COLOR: "1", TERM: "xterm" });
  const child = spawn("script", ["-qec", `bash ${script}`, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  let pending = answer;
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
    // Answer once the question is on the screen, as a person would.
    if (pending !== undefined && output.includes("[y/N]")) {
      child.stdin.write(`${pending}\n`);
      pending = undefined;
    }
  });
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("close", () => {
      rmSync(dir, { recursive: true, force: true });
      done(output);
    });
  });
}

describe("terminalScreen", () => {
  it("shows what a terminal shows: overwritten progress leaves only the final text, typed answers stay", () => {
    const output = "\x1b[36m⠋\x1b[39m a.acsm: converting 0.1s\r\x1b[2K✓ a.acsm → x.epub\r\nAsk? [y/N] y\r\n\x1b[1G\x1b[0KDone\n";
    expect(terminalScreen(output)).toEqual(["✓ a.acsm → x.epub", "Ask? [y/N] y", "Done"]);
  });
});

describe("the README's transcripts", () => {
  let demo: Demo;
  const started = new Date();

  beforeAll(async () => {
    // util-linux's `script` gives each command a terminal, as the README's reader has; Debian ships it
    // in bsdutils, an essential package, so its absence is a broken machine, not a reason to skip.
    expect(spawnSync("script", ["--version"]).status, "util-linux `script` is needed to run the transcripts on a terminal").toBe(0);
    demo = await startDemo({ port: 0, now: started });
  });

  afterAll(async () => {
    await demo?.stop();
  });

  it("run the commands `npm run demo` prints, in its order", () => {
    expect(transcripts().flat().map((s) => s.command)).toEqual(transcriptCommands(README_URL));
  });

  it("are what those commands print on a terminal", { timeout: 240_000 }, async () => {
    const blocks = transcripts();
    expect(blocks.length, "README.md has the convert and the loans transcripts").toBe(2);
    const readmeFolder = /\/tmp\/knock-demo-[A-Za-z0-9]{6}/g;
    const ourFolder = new RegExp(demo.dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "g");
    for (const step of blocks.flat()) {
      const answer = /\[y\/N\] (\S+)$/m.exec(step.expected.join("\n"))?.[1];
      const shown = terminalScreen(await onTerminal(step.command, demo, answer));
      const actual = normalize(shown.map((l) => l.replaceAll(demo.url, README_URL)), started, ourFolder);
      expect(actual, `$ ${step.command}`).toEqual(normalize(step.expected, readmeDay(), readmeFolder));
    }
  });
});
