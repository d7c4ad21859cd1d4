// Shared pieces of the client tests: running the real `knock` process, and a `knock serve` service
// with the libgourou stand-ins and the handler tests' fake distributor (no network).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startLocalService, type LocalService, type LocalServiceOptions } from "../../client/serve/local-service";
import { standinEnv, startFakeDistributor, testEgress, TOOLS_DIR, type FakeDistributor } from "../handler/harness";

export const KNOCK_BIN = resolve(__dirname, "../../client/bin/knock.js");

/**
 * The environment the CLI runs with: no proxies, no AWS settings from this machine, no colours,
 * and credentials files pointed at nothing so only what a test gives counts.
 */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/proxy$/i.test(k) || k.startsWith("AWS_") || k.startsWith("KNOCK_") || k === "CI" || k === "NO_COLOR") continue;
    env[k] = v;
  }
  return {
    ...env,
    AWS_CONFIG_FILE: "/nonexistent/knock-test/config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/knock-test/credentials",
    // No instance metadata lookups from the credential chain.
    AWS_EC2_METADATA_DISABLED: "true",
    // No Pulumi CLI: the service address must come from --url or KNOCK_URL.
    PATH: "/usr/bin:/bin",
    ...extra,
  };
}

/** What a finished `knock` process printed and how it exited. */
export interface KnockRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `knock ARGS` (the real bin) and returns the child and its finished run. */
export function startKnock(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): { child: ChildProcess; done: Promise<KnockRun> } {
  const child = spawn(process.execPath, [KNOCK_BIN, ...args], { env: options.env ?? cliEnv(), cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<KnockRun>((resolveRun) => {
    child.on("close", (code, signal) => resolveRun({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Runs `knock ARGS` to completion. */
export function knock(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<KnockRun> {
  return startKnock(args, options).done;
}

/** A `knock serve` service run in this process with the stand-in tools and a fake distributor. */
export interface StandinService extends LocalService {
  readonly stateDir: string;
  readonly distributor: FakeDistributor;
  readonly logs: string[];
  /** Stops the server and the distributor; the data folder stays (restart tests reuse it). */
  stop(): Promise<void>;
}

/**
 * Starts the local service on a free port with the stand-ins: the converter's connections go to
 * the fake distributor through the handler's egress proxy, as in the handler tests.
 */
export async function startStandinService(options: Partial<LocalServiceOptions> & { stateDir?: string } = {}): Promise<StandinService> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "knock-client-state-"));
  const distributor = await startFakeDistributor();
  const logs: string[] = [];
  const service = await startLocalService({
    port: 0,
    dataDir: options.dataDir ?? mkdtempSync(join(tmpdir(), "knock-serve-data-")),
    toolsDir: TOOLS_DIR,
    log: (line) => logs.push(line),
    ...options,
    seams: { egress: testEgress(distributor), toolEnv: () => ({ ...standinEnv(), FAKE_ADEPT_STATE_DIR: stateDir }), ...options.seams },
  });
  return {
    ...service,
    stateDir,
    distributor,
    logs,
    async stop() {
      await service.close();
      await distributor.close();
    },
  };
}

/** A scratch folder removed by {@link cleanup}. */
export function scratchDir(prefix: string, list: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  list.push(dir);
  return dir;
}

export function cleanup(list: string[]): void {
  for (const dir of list.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * A stand-in for the Pulumi CLI on PATH, answering `pulumi stack output NAME [--show-secrets]` for
 * the stack's `outputs` the way the real CLI's `stack output` command does (pulumi/pulumi,
 * pkg/cmd/pulumi: it prints the value and a newline; for a name the stack lacks it fails with
 * "error: current stack does not have output property 'NAME'" on stderr, and the CLI exits 255 on
 * any error). Every name asked for is appended to `<folder>/asked.log`. Returns the folder to put
 * first on PATH; it is removed by {@link cleanup} with `list`.
 */
export function fakePulumiCli(outputs: Record<string, string>, list: string[]): { bin: string; asked: () => string[] } {
  const bin = scratchDir("knock-fake-pulumi-", list);
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cases = Object.entries(outputs).map(([name, value]) => `  ${quote(name)}) printf '%s\\n' ${quote(value)} ;;`);
  writeFileSync(
    join(bin, "pulumi"),
    [
      "#!/bin/sh",
      `[ "$1" = stack ] && [ "$2" = output ] && [ -n "$3" ] || { echo "error: this stand-in answers only 'pulumi stack output NAME'" >&2; exit 255; }`,
      `printf '%s\\n' "$3" >> ${quote(join(bin, "asked.log"))}`,
      'case "$3" in',
      ...cases,
      `  *) echo "error: current stack does not have output property '$3'" >&2; exit 255 ;;`,
      "esac",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const asked = (): string[] => {
    const file = join(bin, "asked.log");
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  };
  return { bin, asked };
}
