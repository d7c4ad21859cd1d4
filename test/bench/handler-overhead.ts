// Measures the handler's own cost per conversion — parsing, device cache, spawning, streaming
// upload, presigning — separately from the converter's, using the libgourou stand-ins (which record
// their own run time) and a local S3 server in a child process (so its memory is not counted).
// Targets: overhead < 100 ms for a 1 MB book; peak RSS < 200 MB for a 512 MB book (streamed).
//
//   npm run bench:handler            (runs/sizes: BENCH_RUNS_1MB=9, BENCH_RUNS_512MB=3)
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { handlerEnv, makeAcsm, fakeContext, startLocalS3, type LocalS3 } from "../handler/harness";

const MB = 1024 * 1024;
const TARGET_OVERHEAD_MS = 100;
const TARGET_RSS_MB = 200;

if (process.argv.includes("--s3-server")) {
  // Child mode: serve S3 until stdin closes.
  void startLocalS3().then((s3: LocalS3) => {
    process.stdout.write(JSON.stringify({ endpoint: s3.endpoint }) + "\n");
    process.stdin.resume();
    process.stdin.on("end", () => void s3.close().then(() => process.exit(0)));
  });
} else {
  void main().catch((err: unknown) => {
    console.error(`bench:handler failed: ${err instanceof Error ? err.message : String(err)}`);
    console.error("Next step: run `npx vitest run test/handler` to see which part of the handler is broken.");
    process.exit(1);
  });
}

async function startS3Child(): Promise<{ endpoint: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", __filename, "--s3-server"], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`local S3 server exited with ${code}`)));
  });
  return { endpoint: (JSON.parse(line) as { endpoint: string }).endpoint, child };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

async function main(): Promise<void> {
  console.log("bench:handler — starting a local S3 server (child process)…");
  const { endpoint, child } = await startS3Child();
  const work = mkdtempSync(join(tmpdir(), "knock-bench-"));
  const timingFile = join(work, "timing.jsonl");
  Object.assign(process.env, handlerEnv({ endpoint, directory: "", close: async () => undefined }), {
    FAKE_ADEPT_STATE_DIR: work,
    FAKE_ADEPT_TIMING_FILE: timingFile,
  });
  // Imported after the environment is set, like a cold start in Lambda.
  const { createHandler } = await import("../../lambda/src/handler");
  const { loadConfig } = await import("../../lambda/src/config");
  const handle = createHandler({ config: loadConfig(), tmpRoot: join(work, "tmp"), logSink: () => undefined });

  async function convertOnce(bytes: number): Promise<{ totalMs: number; toolMs: number }> {
    process.env.FAKE_ADEPT_BOOK_BYTES = String(bytes);
    writeFileSync(timingFile, "");
    const started = performance.now();
    const res = await handle({ acsm_content: makeAcsm({ title: "Benchmark Book" }) }, fakeContext(900_000));
    const totalMs = performance.now() - started;
    if (res.statusCode !== 200) throw new Error(`conversion answered ${res.statusCode}: ${res.body}`);
    const size = (JSON.parse(res.body) as { output_files: { size_bytes: number }[] }).output_files[0].size_bytes;
    if (size !== bytes) throw new Error(`uploaded ${size} bytes, expected ${bytes}`);
    const toolMs = readFileSync(timingFile, "utf8")
      .trim()
      .split("\n")
      .filter(Boolean)
      .reduce((sum, l) => sum + (JSON.parse(l) as { ms: number }).ms, 0);
    return { totalMs, toolMs };
  }

  const rows: { size: string; runs: number; total: number; tools: number; overhead: number; rssMb: number }[] = [];
  try {
    console.log("warm-up conversion (activates and stores the device)…");
    await convertOnce(MB);
    for (const [label, bytes, runs] of [
      ["1 MB", MB, Number(process.env.BENCH_RUNS_1MB ?? 9)],
      ["512 MB", 512 * MB, Number(process.env.BENCH_RUNS_512MB ?? 3)],
    ] as const) {
      const results: { totalMs: number; toolMs: number }[] = [];
      for (let i = 0; i < runs; i++) {
        process.stdout.write(`  ${label}: run ${i + 1}/${runs}\r`);
        results.push(await convertOnce(bytes));
      }
      rows.push({
        size: label,
        runs,
        total: median(results.map((r) => r.totalMs)),
        tools: median(results.map((r) => r.toolMs)),
        overhead: median(results.map((r) => r.totalMs - r.toolMs)),
        // maxRSS is the peak of this process so far (KiB): the 512 MB row includes everything before it.
        rssMb: process.resourceUsage().maxRSS / 1024,
      });
    }
  } finally {
    child.stdin!.end();
    await new Promise((r) => child.once("exit", r));
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }

  console.log("\nbook     runs  median total  median tools  median overhead  peak RSS so far");
  for (const r of rows) {
    console.log(
      `${r.size.padEnd(8)} ${String(r.runs).padStart(4)}  ${r.total.toFixed(1).padStart(9)} ms  ${r.tools.toFixed(1).padStart(9)} ms  ${r.overhead
        .toFixed(1)
        .padStart(12)} ms  ${r.rssMb.toFixed(0).padStart(10)} MB`,
    );
  }
  const small = rows[0];
  const large = rows[1];
  const ok = small.overhead < TARGET_OVERHEAD_MS && large.rssMb < TARGET_RSS_MB;
  console.log(
    `${ok ? "PASS" : "MISS"}: overhead ${small.overhead.toFixed(1)} ms for 1 MB (target < ${TARGET_OVERHEAD_MS} ms), ` +
      `peak RSS ${large.rssMb.toFixed(0)} MB with a 512 MB book (target < ${TARGET_RSS_MB} MB)`,
  );
  if (!ok) process.exitCode = 1;
}
