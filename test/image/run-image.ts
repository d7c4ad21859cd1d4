// The image test: builds lambda/Dockerfile (or takes a built image) and starts it the way Lambda
// starts a container image — its own ENTRYPOINT and CMD, _HANDLER empty, Lambda's environment
// variables, a read-only root with a tmpfs on /tmp, an arbitrary non-root user — against a
// stand-in Runtime API (test/support/runtime-api.ts). Then it invokes the function twice: a
// Function URL health GET, and a conversion of the sample ACSM with the libgourou stand-ins and a
// local S3. An init error, a crash or a wrong answer fails it, showing the runtime's output.
//
//   sudo npm run test:image
//
// Needs root and buildah (no Docker). Environment:
//   KNOCK_TEST_IMAGE         test this already-built image instead of building one
//   KNOCK_IMAGE_BUILD_ARGS   build arguments, "NAME=value NAME=value" (e.g. a libgourou mirror)
//   KNOCK_IMAGE_TEST_VERBOSE set to 1 to stream the runtime's output as it comes
// Base images must already be in buildah's storage: the build runs with --pull=never.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { handlerEnv, startLocalS3, urlEvent, type LocalS3 } from "../handler/harness";
import { startRuntimeApi, type InvocationOutcome, type RuntimeApi } from "../support/runtime-api";
import { buildArgFlags, lambdaEnvironment, parseImageConfig, sandboxCommand, type ImageConfig } from "./lambda-sandbox";

const REPO = resolve(__dirname, "..", "..");
const DEFAULT_TAG = "localhost/knock-lambda:image-test";
const FIXTURES = join(REPO, "test", "fixtures", "libgourou");
const FIXTURES_TARGET = "/opt/knock-test/libgourou";
// Any user that owns nothing in the image, like the one Lambda picks.
const UID = 993;
const GID = 990;
const INIT_TIMEOUT_MS = 60_000;
const INVOKE_TIMEOUT_MS = 120_000;

class TestFailure extends Error {}

const progress = (message: string): void => void process.stderr.write(`image test: ${message}\n`);

function onPath(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

function buildah(args: string[]): string {
  const r = spawnSync("buildah", args, { encoding: "utf8" });
  if (r.status !== 0) throw new TestFailure(`buildah ${args.join(" ")} failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/** Builds lambda/Dockerfile, printing each STEP; the full log goes to a file shown on failure. */
async function buildImage(tag: string): Promise<void> {
  const args = [
    "bud", "--isolation", "chroot", "--network", "host", "--pull=never", "--layers",
    ...buildArgFlags(process.env.KNOCK_IMAGE_BUILD_ARGS),
    "-f", join(REPO, "lambda", "Dockerfile"), "-t", tag, join(REPO, "lambda"),
  ];
  const logDir = mkdtempSync(join(tmpdir(), "knock-image-build-"));
  const logFile = join(logDir, "build.log");
  progress(`building lambda/Dockerfile as ${tag} (several minutes the first time; log: ${logFile})`);
  const child = spawn("buildah", args, { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logFile);
  const started = Date.now();
  for (const stream of [child.stdout, child.stderr]) {
    stream.pipe(log, { end: false });
    createInterface({ input: stream }).on("line", (line) => {
      if (/^\[\d+\/\d+\] STEP \d+\/\d+:|^STEP \d+\/\d+:/.test(line)) progress(`  ${line.slice(0, 110)}`);
    });
  }
  const status = await new Promise<number | null>((done) => child.on("close", done));
  log.end();
  if (status !== 0) {
    const tail = readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-40).join("\n");
    throw new TestFailure(
      `the image build failed (exit ${status}); last lines of ${logFile}:\n${tail}\n` +
        "Base images must be in buildah's storage (--pull=never); a libgourou mirror goes in KNOCK_IMAGE_BUILD_ARGS.",
    );
  }
  rmSync(logDir, { recursive: true, force: true });
  progress(`built in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** The started container: its output so far, and a promise that settles when it exits. */
interface Container {
  readonly output: string[];
  readonly exited: Promise<string>;
  stop(): void;
}

function startContainer(rootfs: string, mountpoint: string, config: ImageConfig, env: Record<string, string>): Container {
  const { command, args } = sandboxCommand({
    rootfs,
    mountpoint,
    binds: [{ source: FIXTURES, target: FIXTURES_TARGET }],
    workingDir: config.workingDir,
    uid: UID,
    gid: GID,
    env,
    argv: [...config.entrypoint, ...config.cmd],
  });
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const output: string[] = [];
  const verbose = process.env.KNOCK_IMAGE_TEST_VERBOSE === "1";
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      output.push(line);
      if (verbose) process.stderr.write(`  | ${line}\n`);
    });
  }
  const exited = new Promise<string>((done) =>
    child.on("exit", (code, signal) => done(signal ? `killed by ${signal}` : `exit status ${code}`)),
  );
  return {
    output,
    exited,
    stop() {
      // The whole group: unshare, and the runtime under it.
      if (child.exitCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
}

/** Waits for `work`, failing if the container exits or reports an init error first, or on timeout. */
async function guarded<T>(what: string, work: Promise<T>, container: Container, api: RuntimeApi, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const failures = new Promise<never>((_, fail) => {
    void container.exited.then((how) => fail(new TestFailure(`the runtime ended (${how}) while ${what}`)));
    api.onInitError((e) => fail(new TestFailure(`the runtime posted an init error (${e.errorType ?? "no type"}) while ${what}: ${e.body}`)));
    if (api.initErrors.length > 0) fail(new TestFailure(`the runtime posted an init error: ${api.initErrors[0].body}`));
    timer = setTimeout(() => fail(new TestFailure(`timed out after ${timeoutMs / 1000} s ${what}`)), timeoutMs);
  });
  // Settled after the race is over too (the container is stopped at the end): not an error then.
  failures.catch(() => undefined);
  try {
    return await Promise.race([work, failures]);
  } finally {
    clearTimeout(timer);
  }
}

interface UrlResponse {
  statusCode: number;
  headers?: Record<string, string>;
  body: string;
}

function expectResponse(outcome: InvocationOutcome, what: string): UrlResponse {
  if (outcome.kind !== "response") throw new TestFailure(`${what}: the function failed (${outcome.errorType ?? "no error type"}): ${outcome.body}`);
  return JSON.parse(outcome.body) as UrlResponse;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new TestFailure(message);
}

async function invokeHealth(api: RuntimeApi, container: Container): Promise<void> {
  progress("invoking: Function URL GET (health)");
  const res = expectResponse(await guarded("answering the health GET", api.invoke(urlEvent("GET")), container, api, INVOKE_TIMEOUT_MS), "health GET");
  check(res.statusCode === 200, `health GET answered ${res.statusCode}, not 200: ${res.body}`);
  check(/json/.test(res.headers?.["content-type"] ?? ""), `health GET is not JSON (content-type ${res.headers?.["content-type"]})`);
  const body = JSON.parse(res.body) as { status?: string; converter?: { acsmdownloader?: string } };
  check(body.status === "ok", `health GET reports status ${body.status}: ${res.body}`);
  check(/0\.8\.7/.test(body.converter?.acsmdownloader ?? ""), `health GET does not report the converter's version: ${res.body}`);
  progress(`  200 ${res.body}`);
}

async function invokeConversion(api: RuntimeApi, container: Container, s3: LocalS3): Promise<void> {
  progress("invoking: Function URL POST of test/fixtures/libgourou/sample-book.acsm (conversion)");
  const acsm = readFileSync(join(FIXTURES, "sample-book.acsm"), "utf8");
  const event = urlEvent("POST", acsm, { contentType: "application/octet-stream" });
  const res = expectResponse(await guarded("converting the sample ACSM", api.invoke(event, { timeoutMs: INVOKE_TIMEOUT_MS }), container, api, INVOKE_TIMEOUT_MS), "conversion");
  check(res.statusCode === 200, `conversion answered ${res.statusCode}, not 200: ${res.body}`);
  const body = JSON.parse(res.body) as { output_files?: { filename: string; s3_key: string; download_url: string; size_bytes: number }[] };
  const [file] = body.output_files ?? [];
  check(file !== undefined, `conversion answered 200 without output_files: ${res.body}`);
  check(file.filename === "Les Misérables.epub", `converted file is named ${JSON.stringify(file.filename)}, not "Les Misérables.epub"`);
  check(file.download_url.startsWith(s3.endpoint), `download_url ${file.download_url} does not point at the local S3 ${s3.endpoint}`);
  const download = await fetch(file.download_url);
  check(download.status === 200, `downloading ${file.s3_key} answered ${download.status}`);
  const book = Buffer.from(await download.arrayBuffer());
  check(book.length === file.size_bytes && book.length > 0, `stored object has ${book.length} bytes, the answer says ${file.size_bytes}`);
  check(!book.subarray(0, 32).toString("latin1").startsWith("FAKE-ADEPT-ENCRYPTED"), "the stored book still carries the (stand-in) DRM");
  progress(`  200 ${file.filename} -> s3 ${file.s3_key} (${book.length} bytes, downloaded through its presigned URL)`);
}

async function main(): Promise<number> {
  const missing = ["buildah", "unshare", "mount"].filter((t) => !onPath(t));
  if (missing.length > 0) {
    console.log(`SKIP image test: ${missing.join(", ")} not found. It needs buildah and util-linux, as root: apt-get install buildah, then sudo npm run test:image`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.log("SKIP image test: it must run as root (it mounts the image and switches users). Run: sudo npm run test:image");
    return 0;
  }

  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse().splice(0)) {
      try {
        await step();
      } catch (err) {
        progress(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));

  let container: Container | undefined;
  try {
    const tag = process.env.KNOCK_TEST_IMAGE?.trim() || DEFAULT_TAG;
    if (process.env.KNOCK_TEST_IMAGE?.trim()) progress(`using the image ${tag} (KNOCK_TEST_IMAGE)`);
    else await buildImage(tag);

    const config = parseImageConfig(buildah(["inspect", "--type", "image", tag]));
    progress(`image config: ENTRYPOINT ${JSON.stringify(config.entrypoint)} CMD ${JSON.stringify(config.cmd)} WORKDIR ${config.workingDir}`);

    const s3 = await startLocalS3();
    cleanups.push(() => s3.close());
    const api = await startRuntimeApi();
    cleanups.push(() => api.close());

    const ctr = buildah(["from", "--pull=never", "--name", `knock-image-test-${process.pid}`, tag]);
    cleanups.push(() => void buildah(["rm", ctr]));
    const rootfs = buildah(["mount", ctr]);
    cleanups.push(() => void buildah(["umount", ctr]));
    const mountpoint = mkdtempSync(join(tmpdir(), "knock-image-root-"));
    cleanups.push(() => rmSync(mountpoint, { recursive: true, force: true }));

    const env = lambdaEnvironment({
      imageEnv: config.env,
      functionEnv: handlerEnv(s3, { LIBGOUROU_BIN_DIR: `${FIXTURES_TARGET}/tools` }),
      runtimeApi: api.address,
    });
    progress(`starting the container as ${UID}:${GID}, read-only root, tmpfs /tmp, _HANDLER empty, AWS_LAMBDA_RUNTIME_API=${api.address}`);
    const started = startContainer(rootfs, mountpoint, config, env);
    container = started;
    cleanups.push(async () => {
      started.stop();
      await started.exited;
    });

    await guarded("initialising (before its first /runtime/invocation/next)", api.ready, started, api, INIT_TIMEOUT_MS);
    progress("initialised: the runtime asked for its first invocation");
    await invokeHealth(api, started);
    await invokeConversion(api, started, s3);
    await cleanup();
    console.log(`PASS image test: ${tag} starts as Lambda starts it and answers a health GET and a conversion`);
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (container && container.output.length > 0) {
      process.stderr.write(`--- the runtime's output (last 60 lines) ---\n${container.output.slice(-60).join("\n")}\n--- end ---\n`);
    }
    await cleanup();
    if (!(err instanceof TestFailure) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    console.log(`FAIL image test: ${message}`);
    return 1;
  }
}

void main().then((code) => process.exit(code));
