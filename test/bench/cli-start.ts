// Measures how long the `knock` command takes to start and finish, beside a bare `node -e 0` on the
// same machine: `knock --help` (start-up alone) and `knock health` against a local `knock serve`
// with the libgourou stand-ins (start-up plus one request). Goal: `knock --help` within 4× bare Node,
// as well-made Node CLIs start (the client run through tsx took ~16×).
//
// It first rebuilds the client bundle (scripts/build-client.mjs), so it measures what `npm ci`
// installs, and checks that `knock` runs it rather than the TypeScript sources. The three commands
// are run in turn, round after round, so that a machine busy with something else slows all three
// alike; the verdict is on the ratio of medians, and the spread is printed beside it.
//
//   npm run bench:cli   (BENCH_WARMUP=3, BENCH_RUNS=21)
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { cliEnv, KNOCK_BIN } from "../client/helpers";
import { TOOLS_DIR } from "../handler/harness";
import { countFromEnv, UsageError } from "./settings";

const GOAL_RATIO = 4;
const ROOT = resolve(__dirname, "../..");


interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

function spread(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const mid = (s.length - 1) / 2;
  return { min: s[0], median: (s[Math.floor(mid)] + s[Math.ceil(mid)]) / 2, max: s[s.length - 1] };
}

/** Progress goes to stderr, rewritten in place only on a terminal. */
function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${text}\x1b[K`);
}

/** Runs a command to its end and returns its wall time in ms; a failed run stops the bench. */
function timeRun(label: string, args: readonly string[]): Promise<number> {
  return new Promise((resolveRun, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env: cliEnv(), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const elapsed = performance.now() - started;
      if (code === 0) resolveRun(elapsed);
      else reject(new Error(`\`${label}\` exited with ${code}: ${stderr.trim().split("\n")[0] ?? ""}`));
    });
  });
}

/** `knock serve` (the real command) on a free port with the stand-in tools; resolves with its URL. */
async function startServe(dataDir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [KNOCK_BIN, "serve", "--port", "0", "--tools", TOOLS_DIR, "--data", dataDir], {
    env: cliEnv(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((done) => child.once("close", () => done()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const lines: string[] = [];
    // A generous ceiling: the first start also fills Node's compile cache on a busy machine.
    const timer = setTimeout(() => reject(new Error(`knock serve did not say where it listens within 60 s:\n${lines.join("\n")}`)), 60_000);
    createInterface({ input: child.stderr }).on("line", (line) => {
      lines.push(line);
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`knock serve exited with ${code}:\n${lines.join("\n")}`));
    });
  });
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function main(): Promise<void> {
  const warmups = countFromEnv("BENCH_WARMUP", 3);
  const runs = countFromEnv("BENCH_RUNS", 21);

  console.log("bench:cli — building the client bundle (scripts/build-client.mjs)…");
  const build = spawnSync(process.execPath, [join(ROOT, "scripts/build-client.mjs")], { stdio: "inherit" });
  if (build.status !== 0) throw new Error("the client bundle did not build (its error is above)");
  const which = spawnSync(process.execPath, [KNOCK_BIN, "--debug", "--help"], { env: cliEnv(), encoding: "utf8" });
  const ran = /^knock: running (.*)$/m.exec(which.stderr)?.[1] ?? "(nothing said)";
  if (!ran.endsWith("knock.cjs")) throw new Error(`knock does not run the bundle just built: ${ran}`);

  const dataDir = mkdtempSync(join(tmpdir(), "knock-bench-cli-"));
  const serve = await startServe(dataDir);
  try {
    console.log(`knock serve with the stand-in tools on ${serve.url}`);
    const commands = [
      { label: "node -e 0", args: ["-e", "0"] },
      { label: "knock --help", args: [KNOCK_BIN, "--help"] },
      { label: "knock health", args: [KNOCK_BIN, "health", "--url", serve.url] },
    ];
    const times = commands.map(() => [] as number[]);
    console.log(`warm-up: ${warmups} round(s), not counted; then ${runs} rounds of the ${commands.length} commands in turn…`);
    for (let round = -warmups; round < runs; round++) {
      progress(round < 0 ? `warm-up ${round + warmups + 1}/${warmups}` : `round ${round + 1}/${runs}`);
      for (const [i, c] of commands.entries()) {
        const ms = await timeRun(c.label, c.args);
        if (round >= 0) times[i].push(ms);
      }
    }
    progress("");
    if (process.stderr.isTTY) process.stderr.write("\r");

    const stats = times.map(spread);
    const base = stats[0].median;
    console.log(`\ncommand         runs  median      min–max          × node -e 0   (load average ${loadavg()[0].toFixed(1)} on the first minute)`);
    for (const [i, c] of commands.entries()) {
      const s = stats[i];
      const range = `${s.min.toFixed(0)}–${s.max.toFixed(0)} ms`;
      console.log(`${c.label.padEnd(14)} ${String(runs).padStart(5)}  ${`${s.median.toFixed(0)} ms`.padStart(7)}     ${range.padEnd(15)}  ${(s.median / base).toFixed(1).padStart(6)}×`);
    }
    const ratio = stats[1].median / base;
    const ok = ratio <= GOAL_RATIO;
    console.log(
      `${ok ? "PASS" : "MISS"}: knock --help median ${stats[1].median.toFixed(0)} ms is ${ratio.toFixed(1)}× bare node's ${base.toFixed(0)} ms (goal ≤ ${GOAL_RATIO}×)`,
    );
    if (!ok) process.exitCode = 1;
  } finally {
    await serve.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`bench:cli: ${err.message}`);
    process.exit(2);
  }
  console.error(`bench:cli failed: ${err instanceof Error ? err.message : String(err)}`);
  console.error("Next step: run `npx vitest run test/client/bundle.test.ts` to see whether the bundle or the fallback is broken.");
  process.exit(1);
});
