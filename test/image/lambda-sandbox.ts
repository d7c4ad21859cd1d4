// Pure helpers for the image test (run-image.ts): how Lambda starts a container image, and the
// network the test gives it, written down as data so the unit tests can hold them without buildah
// or root.
//
// Lambda runs an image's own ENTRYPOINT with its CMD as arguments, in the image's WORKDIR, as a
// user of its choosing, on a read-only root file system where only /tmp is writable, with the
// image's ENV plus the function's environment plus the variables Lambda defines itself.
import { isIP } from "node:net";

/** The parts of an OCI image config Lambda uses to start a container. */
export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
}

/** Reads the OCI config from `buildah inspect --type image IMAGE` (its `OCIv1.config`). */
export function parseImageConfig(inspectJson: string): ImageConfig {
  const inspected = JSON.parse(inspectJson) as {
    OCIv1?: { config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string } };
  };
  const config = inspected.OCIv1?.config;
  if (!config) throw new Error("buildah inspect printed no OCIv1.config: is this an image?");
  const env: Record<string, string> = {};
  for (const entry of config.Env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return {
    entrypoint: config.Entrypoint ?? [],
    cmd: config.Cmd ?? [],
    env,
    workingDir: config.WorkingDir || "/",
  };
}

/**
 * Turns `KNOCK_IMAGE_BUILD_ARGS` ("NAME=value NAME=value", whitespace-separated) into buildah
 * `--build-arg` flags. Throws naming the item that is not NAME=value.
 */
export function buildArgFlags(spec: string | undefined): string[] {
  const flags: string[] = [];
  for (const item of (spec ?? "").split(/\s+/).filter(Boolean)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(item)) {
      throw new Error(`KNOCK_IMAGE_BUILD_ARGS: "${item}" is not NAME=value`);
    }
    flags.push("--build-arg", item);
  }
  return flags;
}

/** Settings for {@link lambdaEnvironment}. */
export interface LambdaEnvironmentOptions {
  /** The image's ENV. */
  readonly imageEnv: Readonly<Record<string, string>>;
  /** The function's configured environment variables. */
  readonly functionEnv: Readonly<Record<string, string>>;
  /** `host:port` of the Runtime API. */
  readonly runtimeApi: string;
  /** @default "knock-lambda-image-test" */
  readonly functionName?: string;
  /** @default 1024 */
  readonly memoryMb?: number;
  /** @default "us-east-1" */
  readonly region?: string;
}

/**
 * The environment a container image's process starts with on Lambda: the image's ENV, then the
 * function's variables, then the reserved variables Lambda defines (AWS Lambda Developer Guide,
 * "Defined runtime environment variables"), which a function cannot override. `_HANDLER` is left
 * empty: Lambda sets it for .zip functions only; an image gets its handler as CMD instead.
 */
export function lambdaEnvironment(options: LambdaEnvironmentOptions): Record<string, string> {
  const functionName = options.functionName ?? "knock-lambda-image-test";
  const region = options.region ?? options.functionEnv.AWS_REGION ?? "us-east-1";
  return {
    ...options.imageEnv,
    ...options.functionEnv,
    _HANDLER: "",
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memoryMb ?? 1024),
    AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
    AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${functionName}`,
    AWS_LAMBDA_LOG_STREAM_NAME: "2026/11/26/[$LATEST]00000000000000000000000000000000",
    AWS_LAMBDA_RUNTIME_API: options.runtimeApi,
    LAMBDA_TASK_ROOT: "/var/task",
    LAMBDA_RUNTIME_DIR: "/var/runtime",
    TZ: ":UTC",
  };
}

/** A host folder or file mounted read-only into the container. */
export interface ReadOnlyBind {
  readonly source: string;
  /**
   * Absolute path inside the container; created in the (throwaway) container layer if missing:
   * a directory for a folder, an empty file for a file.
   */
  readonly target: string;
}

/** Settings for {@link sandboxCommand}. */
export interface SandboxOptions {
  /** The image's root file system (`buildah mount`). */
  readonly rootfs: string;
  /** An empty host directory to assemble the read-only root on. */
  readonly mountpoint: string;
  readonly binds: readonly ReadOnlyBind[];
  readonly workingDir: string;
  readonly uid: number;
  readonly gid: number;
  /** The complete environment of the started process (nothing else is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** ENTRYPOINT followed by CMD. */
  readonly argv: readonly string[];
  /** Size of the /tmp tmpfs in MiB. @default 512 */
  readonly tmpMb?: number;
}

// Runs as root in a private mount namespace: a read-only bind of the image's root, the read-only
// binds (source/target pairs up to "--"; a missing target is made in the container's throwaway
// layer while it is still writable), a fresh tmpfs on /tmp (the one writable place, as on
// Lambda), the host's /proc and /dev; then `exec "$@"`. The namespace ends with the process,
// taking every mount with it.
const SETUP_SCRIPT = `set -eu
rootfs=$1 root=$2 tmp_mb=$3
shift 3
mount --make-rprivate /
mount --bind "$rootfs" "$root"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  if [ -d "$1" ]; then
    mkdir -p "$root$2"
  else
    mkdir -p "$(dirname "$root$2")"
    [ -e "$root$2" ] || : > "$root$2"
  fi
  mount --bind "$1" "$root$2"
  mount -o remount,bind,ro "$root$2"
  shift 2
done
shift
mount -o remount,bind,ro "$root"
mount -t tmpfs -o "mode=1777,nosuid,nodev,size=\${tmp_mb}m" tmpfs "$root/tmp"
mount --rbind /proc "$root/proc"
mount --rbind /dev "$root/dev"
exec "$@"
`;

/**
 * The host command that starts `argv` the way Lambda would, without Docker: `unshare` for a
 * private mount namespace, then (after the mounts) `env -i` for exactly `env`, and `unshare --root
 * --wd --setuid --setgid` to enter the root, change to the working directory and drop to a
 * non-root user with no supplementary groups. Must be run as root.
 */
export function sandboxCommand(options: SandboxOptions): { command: string; args: string[] } {
  for (const { target } of options.binds) {
    if (!target.startsWith("/") || /\s|\.\./.test(target)) throw new Error(`bind target must be an absolute path without spaces or "..": ${target}`);
    // Those are mounted over after the binds, which would hide them.
    if (/^\/(tmp|proc|dev)(\/|$)/.test(target)) throw new Error(`bind target must not be under /tmp, /proc or /dev: ${target}`);
  }
  if (options.uid === 0 || options.gid === 0) throw new Error("the container must not run as root: Lambda never does");
  const envPairs = Object.entries(options.env).map(([name, value]) => `${name}=${value}`);
  return {
    command: "unshare",
    args: [
      "--mount", "--fork", "--",
      "sh", "-c", SETUP_SCRIPT, "lambda-sandbox",
      options.rootfs, options.mountpoint, String(options.tmpMb ?? 512),
      ...options.binds.flatMap((b) => [b.source, b.target]), "--",
      "/usr/bin/env", "-i", ...envPairs,
      "/usr/bin/unshare", `--root=${options.mountpoint}`, `--wd=${options.workingDir}`,
      `--setuid=${options.uid}`, `--setgid=${options.gid}`, "--",
      ...options.argv,
    ],
  };
}

// ---- the test's network -------------------------------------------------------------------------
//
// The handler lets the converter tools connect only through its egress proxy, which resolves each
// host with the system resolver (getaddrinfo) and connects only to public unicast addresses. The
// image test keeps that production policy and gives the container a network in which it holds
// without leaving the machine: a network namespace of its own whose only interface is `lo`, with a
// public unicast address on `lo` where a fake distributor listens, and an /etc/hosts in the
// container that sends the stand-ins' hosts there (the image's glibc reads /etc/nsswitch.conf,
// "hosts: files dns" in Debian bookworm, so the file answers before any DNS server is asked).

/** One /etc/hosts line: an address and the names that resolve to it. */
export interface HostsEntry {
  readonly address: string;
  readonly names: readonly string[];
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * The container's /etc/hosts (hosts(5)): the usual localhost lines, then `entries`. Throws on an
 * address that is not an IP address or a name that is not a host name (either would make glibc
 * skip the line, and the test would fail far from the cause).
 */
export function hostsFile(entries: readonly HostsEntry[]): string {
  const lines = [
    "# /etc/hosts of the image test's container (test/image/run-image.ts)",
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
  ];
  for (const { address, names } of entries) {
    if (isIP(address) === 0) throw new Error(`hosts entry: "${address}" is not an IP address`);
    if (names.length === 0) throw new Error(`hosts entry for ${address} names no host`);
    for (const name of names) if (!HOST_NAME.test(name)) throw new Error(`hosts entry: "${name}" is not a host name`);
    lines.push(`${address}\t${names.join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The host of an ACSM's `<operatorURL>` (the server acsmdownloader talks to). */
export function operatorHost(acsm: string): string {
  const m = /<operatorURL>\s*([^<\s]+)\s*<\/operatorURL>/.exec(acsm);
  if (!m) throw new Error("the ACSM has no <operatorURL>");
  return new URL(m[1]).hostname;
}

/**
 * The `ip` commands that make a fresh network namespace the test's network: `lo` up, and
 * `address` on it as a host address (/32 or /128; `nodad`, so it can be bound at once).
 */
export function namespaceSetup(address: string): string[][] {
  const family = isIP(address);
  if (family === 0) throw new Error(`"${address}" is not an IP address`);
  return [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "address", "add", `${address}/${family === 4 ? 32 : 128}`, "dev", "lo", ...(family === 6 ? ["nodad"] : [])],
  ];
}

/** The interfaces other than `lo` in `ip -o link show` output: none, or packets could leave. */
export function interfacesBesidesLoopback(ipOneLineLinks: string): string[] {
  const names: string[] = [];
  for (const line of ipOneLineLinks.split("\n")) {
    const m = /^\d+:\s+([^:@\s]+)/.exec(line);
    if (m && m[1] !== "lo") names.push(m[1]);
  }
  return names;
}
