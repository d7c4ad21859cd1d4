// The image test: builds lambda/Dockerfile (or takes a built image) and starts it the way Lambda
// starts a container image — its own ENTRYPOINT and CMD, _HANDLER empty, Lambda's environment
// variables, a read-only root with a tmpfs on /tmp, an arbitrary non-root user — against a
// stand-in Runtime API (test/support/runtime-api.ts). Then it invokes the function twice: a
// Function URL health GET, and a conversion of the sample ACSM with the libgourou stand-ins and a
// local S3. An init error, a crash or a wrong answer fails it, showing the runtime's output.
//
// The network: the container runs the real exported handler with the production egress policy
// (the converter tools connect only through the handler's proxy, which resolves each host with the
// system resolver and connects only to public unicast addresses). So after the build (which runs
// on the host's network: it may fetch from a local git mirror) the test re-runs itself with
// `unshare --net` in a network namespace of its own, whose only interface is `lo`: nothing can
// leave it. On `lo` it puts DISTRIBUTOR_ADDRESS, a public unicast address, with the fake
// distributor (test/handler/harness.ts) listening on its ports 80 and 443, and it bind-mounts an
// /etc/hosts into the container (read-only) that resolves the hosts the stand-ins contact — Adobe's
// activation server and the sample ACSM's operator — to that address. The Runtime API stand-in,
// the local S3, the fake distributor and the container all live in the namespace; it is anonymous
// and disappears with its last process, so there is nothing to delete afterwards.
//
//   sudo npm run test:image
//
// Needs root, buildah, util-linux (unshare, mount) and iproute2 (ip); no Docker. Environment:
//   KNOCK_TEST_IMAGE         test this already-built image instead of building one
//   KNOCK_IMAGE_BUILD_ARGS   build arguments, "NAME=value NAME=value" (e.g. a libgourou mirror)
//   KNOCK_IMAGE_TEST_VERBOSE set to 1 to stream the runtime's output as it comes
// Base images must already be in buildah's storage: the build runs with --pull=never.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { isPublicAddress } from "../../lambda/src/address-policy";
import { handlerEnv, startFakeDistributor, startLocalS3, urlEvent, type FakeDistributor, type LocalS3 } from "../handler/harness";
import { startRuntimeApi, type InvocationOutcome, type RuntimeApi } from "../support/runtime-api";
import {
  buildArgFlags,
  hostsFile,
  interfacesBesidesLoopback,
  lambdaEnvironment,
  namespaceSetup,
  operatorHost,
  parseImageConfig,
  sandboxCommand,
  type ImageConfig,
  type ReadOnlyBind,
} from "./lambda-sandbox";

const REPO = resolve(__dirname, "..", "..");
const DEFAULT_TAG = "localhost/knock-lambda:image-test";
const FIXTURES = join(REPO, "test", "fixtures", "libgourou");
const FIXTURES_TARGET = "/opt/knock-test/libgourou";
// Any user that owns nothing in the image, like the one Lambda picks.
const UID = 993;
const GID = 990;
const INIT_TIMEOUT_MS = 60_000;
const INVOKE_TIMEOUT_MS = 120_000;
/** The first argument of the re-run inside the network namespace; the image's tag follows it. */
const NAMESPACE_STAGE = "--inside-test-network-namespace";
/**
 * The fake distributor's address inside the test's namespace. It must pass the production policy
 * (public unicast, lambda/src/address-policy.ts), so no documentation or private range will do. It
 * lies in 2d00::/8, inside global unicast 2000::/3 but "RESERVED" in IANA's IPv6 Global Unicast
 * Address Space registry (not allocated to any registry): it is nobody's server, not even in
 * principle. And it never reaches a wire anyway: the namespace has no interface but `lo`.
 */
const DISTRIBUTOR_ADDRESS = "2d00::7e57";
/** Adobe's activation server: adept_activate's ACS_SERVER (include/libgourou.h), over http. */
const ACTIVATION_HOST = "adeactivate.adobe.com";

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

function startContainer(rootfs: string, mountpoint: string, config: ImageConfig, env: Record<string, string>, binds: readonly ReadOnlyBind[]): Container {
  const { command, args } = sandboxCommand({
    rootfs,
    mountpoint,
    binds,
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

/** The libgourou version the build must produce: a LIBGOUROU_VERSION build argument, else the Dockerfile's default. */
function expectedLibgourouVersion(): string {
  const fromArgs = /(?:^|\s)LIBGOUROU_VERSION=(\S+)/.exec(process.env.KNOCK_IMAGE_BUILD_ARGS ?? "")?.[1];
  const fromDockerfile = /^ARG LIBGOUROU_VERSION=(\S+)$/m.exec(readFileSync(join(REPO, "lambda", "Dockerfile"), "utf8"))?.[1];
  const version = fromArgs ?? fromDockerfile;
  if (!version) throw new TestFailure("lambda/Dockerfile declares no default LIBGOUROU_VERSION");
  return version;
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
  const version = expectedLibgourouVersion();
  check((body.converter?.acsmdownloader ?? "") === `Current libgourou version : ${version}`, `health GET does not report libgourou ${version}, the version the image was built with: ${res.body}`);
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

/** The fake distributor's two listeners on DISTRIBUTOR_ADDRESS: plain http, and the CONNECT target for https. */
interface Distributor {
  readonly http: FakeDistributor;
  readonly https: FakeDistributor;
}

/**
 * The conversion's requests went through the handler's proxy to the fake distributor. libgourou 0.8.9
 * talks to Adobe's activation server over https, so the activation and the fulfilment both arrive as
 * tunnels on 443 (0.8.7 activated over plain http on 80); plain http requests are counted as well.
 */
function checkDistributorReached(distributor: Distributor): void {
  const plain = distributor.http.hits.filter((h) => h.startsWith("POST "));
  const tunnels = distributor.https.hits.filter((h) => h === "connection").length;
  check(tunnels >= 2, `the fake distributor at [${DISTRIBUTOR_ADDRESS}]:443 got ${tunnels} tunnelled connection(s), expected the activation's and the fulfilment's (plain http hits: ${distributor.http.hits.join(", ") || "none"})`);
  progress(`  the fake distributor at ${DISTRIBUTOR_ADDRESS} got ${tunnels} tunnel(s) on 443 and ${plain.length} plain request(s) on 80, through the handler's egress proxy`);
}

function run(command: string[]): string {
  const r = spawnSync(command[0], command.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new TestFailure(`${command.join(" ")} failed: ${(r.stderr || r.stdout || String(r.error ?? "")).trim()}`);
  return r.stdout;
}

/**
 * Makes the fresh namespace the test's network (see the top of this file), after checking that it
 * is a namespace of its own with nothing but `lo`, so nothing it does can reach another machine.
 */
function setUpNetwork(): void {
  // The parent is the run on the host (unshare execs this process without forking).
  if (readlinkSync("/proc/self/ns/net") === readlinkSync(`/proc/${process.ppid}/ns/net`)) {
    throw new TestFailure(`${NAMESPACE_STAGE} is for the test's own re-run under unshare --net, not for the host's network`);
  }
  const others = interfacesBesidesLoopback(run(["ip", "-o", "link", "show"]));
  check(others.length === 0, `the test's network namespace has interfaces besides lo (${others.join(", ")}): traffic could leave it`);
  check(
    isPublicAddress(DISTRIBUTOR_ADDRESS),
    `the address policy no longer counts ${DISTRIBUTOR_ADDRESS} as public: give DISTRIBUTOR_ADDRESS in test/image/run-image.ts one it accepts`,
  );
  for (const command of namespaceSetup(DISTRIBUTOR_ADDRESS)) run(command);
}

/** Set on Ctrl-C: the failures the interruption itself causes are not reported. */
let interrupted = false;

/** Ctrl-C: cleans up and exits 130, once, however many SIGINTs arrive (the terminal's and a forwarded one). */
function onInterrupt(cleanup: () => Promise<void>): void {
  process.on("SIGINT", () => {
    if (interrupted) return;
    interrupted = true;
    void cleanup().then(() => process.exit(130));
  });
}

/** On the host: checks the prerequisites, builds the image, then re-runs this file in a new network namespace. */
async function onHost(): Promise<number> {
  const missing = ["buildah", "unshare", "mount", "ip"].filter((t) => !onPath(t));
  if (missing.length > 0) {
    console.log(
      `SKIP image test: ${missing.join(", ")} not found. It needs buildah, util-linux and iproute2, as root: ` +
        "apt-get install buildah iproute2, then sudo npm run test:image",
    );
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.log("SKIP image test: it must run as root (it mounts the image, makes a network namespace and switches users). Run: sudo npm run test:image");
    return 0;
  }
  onInterrupt(async () => undefined);
  let tag: string;
  try {
    tag = process.env.KNOCK_TEST_IMAGE?.trim() || DEFAULT_TAG;
    if (process.env.KNOCK_TEST_IMAGE?.trim()) progress(`using the image ${tag} (KNOCK_TEST_IMAGE)`);
    else await buildImage(tag);
  } catch (err) {
    if (!(err instanceof TestFailure) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    console.log(`FAIL image test: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  progress("entering a network namespace of its own (unshare --net)");
  // Without --fork, unshare execs node itself: a Ctrl-C reaches the re-run directly.
  const child = spawn("unshare", ["--net", "--", process.execPath, ...process.execArgv, __filename, NAMESPACE_STAGE, tag], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.removeAllListeners("SIGINT");
  process.on("SIGINT", () => {
    interrupted = true;
    child.kill("SIGINT");
  });
  let verdict = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (/^(PASS|FAIL|SKIP) image test:/.test(line)) verdict = true;
    console.log(line);
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) => {
    child.on("error", () => done([null, null]));
    child.on("close", (c, s) => done([c, s]));
  });
  if (!verdict && interrupted) return 130;
  if (!verdict) {
    console.log(`FAIL image test: the run in its own network namespace ended (${signal ? `killed by ${signal}` : `exit status ${code}`}) without a verdict; can this machine run unshare --net?`);
    return 1;
  }
  return code ?? 1;
}

/** Inside the test's network namespace: everything else. */
async function inNamespace(tag: string): Promise<number> {
  const cleanups: (() => Promise<void> | void)[] = [];
  // One run of the steps, last first, shared by the end of the test and Ctrl-C (whichever comes
  // first; the other waits for it).
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const step of cleanups.reverse()) {
        try {
          await step();
        } catch (err) {
          progress(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })());
  onInterrupt(cleanup);

  let container: Container | undefined;
  try {
    setUpNetwork();
    // The stand-ins' hosts: the activation server, and the operator of the ACSM the test converts.
    const acsm = readFileSync(join(FIXTURES, "sample-book.acsm"), "utf8");
    const hostNames = [ACTIVATION_HOST, operatorHost(acsm)];
    const hostsDir = mkdtempSync(join(tmpdir(), "knock-image-hosts-"));
    cleanups.push(() => rmSync(hostsDir, { recursive: true, force: true }));
    const hostsPath = join(hostsDir, "hosts");
    writeFileSync(hostsPath, hostsFile([{ address: DISTRIBUTOR_ADDRESS, names: hostNames }]), { mode: 0o644 });
    const http = await startFakeDistributor({ host: DISTRIBUTOR_ADDRESS, port: 80 });
    cleanups.push(() => http.close());
    const https = await startFakeDistributor({ host: DISTRIBUTOR_ADDRESS, port: 443 });
    cleanups.push(() => https.close());
    progress(`network: a namespace of its own with only lo; ${hostNames.join(", ")} -> ${DISTRIBUTOR_ADDRESS} (the fake distributor, ports 80 and 443) through the container's /etc/hosts`);

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
    const binds = [
      { source: FIXTURES, target: FIXTURES_TARGET },
      { source: hostsPath, target: "/etc/hosts" },
    ];
    const started = startContainer(rootfs, mountpoint, config, env, binds);
    container = started;
    cleanups.push(async () => {
      started.stop();
      await started.exited;
    });

    await guarded("initialising (before its first /runtime/invocation/next)", api.ready, started, api, INIT_TIMEOUT_MS);
    progress("initialised: the runtime asked for its first invocation");
    await invokeHealth(api, started);
    await invokeConversion(api, started, s3);
    checkDistributorReached({ http, https });
    await cleanup();
    console.log(`PASS image test: ${tag} starts as Lambda starts it and answers a health GET and a conversion`);
    return 0;
  } catch (err) {
    if (interrupted) {
      await cleanup();
      return 130;
    }
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

const stage = process.argv[2] === NAMESPACE_STAGE ? inNamespace(process.argv[3] ?? DEFAULT_TAG) : onHost();
void stage.then((code) => process.exit(code));
