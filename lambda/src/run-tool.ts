import { spawn } from "node:child_process";

/** How a child process ended. */
export interface ToolRun {
  /** Exit status, or null when killed. */
  readonly exitCode: number | null;
  /** Combined stdout+stderr, truncated to `maxOutputBytes` (libgourou reports errors on stdout). */
  readonly output: string;
  /** True when the time limit was reached and the process group was killed. */
  readonly timedOut: boolean;
  /** True when the output limit was reached and the process group was killed. */
  readonly outputOverflow: boolean;
  /** Wall time in ms. */
  readonly durationMs: number;
}

/**
 * Variables a tool may inherit from the function's environment. Everything else — above all the
 * AWS credentials and session token Lambda puts in the environment — stays out of the converter's
 * reach: it parses documents from strangers' servers and needs none of it. `PATH` and the locale
 * let it start; the TLS variables let OpenSSL/libcurl find a CA bundle moved by the image.
 */
const INHERITED = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR"] as const;

/** The minimal environment for a tool: {@link INHERITED} from `from`, then `extra` (e.g. the proxy variables). */
export function toolEnvironment(extra: Readonly<Record<string, string>> = {}, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (from[name] !== undefined) env[name] = from[name];
  return { ...env, ...extra };
}

/** Limits applied to every child process. */
export interface RunToolOptions {
  readonly timeoutMs: number;
  /** Output kept and tolerated; beyond it the process is killed. @default 1 MiB */
  readonly maxOutputBytes?: number;
  /** The child's whole environment. @default {@link toolEnvironment}() */
  readonly env?: NodeJS.ProcessEnv;
}

/** Raised when the executable does not exist (ENOENT) or cannot be run (EACCES). */
export class ToolNotRunnableError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`cannot run ${path}: ${code}`);
  }
}

/**
 * Runs `file` with an argument array (never a shell), no stdin, bounded output and a time limit.
 * The child leads its own process group and the whole group is killed on timeout or on runaway
 * output: adept_activate repeats its `[y/N]` prompt forever when stdin is closed, and a tool may
 * leave helpers behind.
 */
export function runTool(file: string, args: readonly string[], options: RunToolOptions): Promise<ToolRun> {
  const maxOutput = options.maxOutputBytes ?? 1024 * 1024;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (options.timeoutMs <= 0) {
      resolve({ exitCode: null, output: "", timedOut: true, outputOverflow: false, durationMs: 0 });
      return;
    }
    const child = spawn(file, [...args], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      env: options.env ?? toolEnvironment(),
    });
    const chunks: Buffer[] = [];
    let kept = 0;
    let timedOut = false;
    let outputOverflow = false;
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const onData = (chunk: Buffer): void => {
      if (kept + chunk.length > maxOutput) {
        chunks.push(chunk.subarray(0, Math.max(0, maxOutput - kept)));
        kept = maxOutput;
        if (!outputOverflow) {
          outputOverflow = true;
          killGroup();
        }
        return;
      }
      kept += chunk.length;
      chunks.push(chunk);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ENOENT" || err.code === "EACCES") reject(new ToolNotRunnableError(file, err.code));
      else reject(err);
    });
    // A helper the tool left behind could hold the pipes open (and 'close' would never come):
    // end the whole group as soon as the leader exits.
    child.on("exit", killGroup);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        exitCode: code,
        output: Buffer.concat(chunks).toString("utf8"),
        timedOut,
        outputOverflow,
        durationMs: Date.now() - started,
      });
    });
  });
}
