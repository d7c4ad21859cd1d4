// Pure helpers for the image test (run-image.ts): how Lambda starts a container image, written down
// as data so the unit tests can hold it without buildah or root.
//
// Lambda runs an image's own ENTRYPOINT with its CMD as arguments, in the image's WORKDIR, as a
// user of its choosing, on a read-only root file system where only /tmp is writable, with the
// image's ENV plus the function's environment plus the variables Lambda defines itself.

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

/** A host folder mounted read-only into the container. */
export interface ReadOnlyBind {
  readonly source: string;
  /** Absolute path inside the container; created in the (throwaway) container layer if missing. */
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

// Runs as root in a private mount namespace: a read-only bind of the image's root, a fresh tmpfs
// on /tmp (the one writable place, as on Lambda), the host's /proc and /dev, and the read-only
// binds; then `exec "$@"`. The namespace ends with the process, taking every mount with it.
const SETUP_SCRIPT = `set -eu
rootfs=$1 root=$2 tmp_mb=$3 binds=$4
shift 4
mount --make-rprivate /
mount --bind "$rootfs" "$root"
for target in $binds; do mkdir -p "$root$target"; done
mount -o remount,bind,ro "$root"
mount -t tmpfs -o "mode=1777,nosuid,nodev,size=\${tmp_mb}m" tmpfs "$root/tmp"
mount --rbind /proc "$root/proc"
mount --rbind /dev "$root/dev"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  mount --bind "$1" "$root$2"
  mount -o remount,bind,ro "$root$2"
  shift 2
done
shift
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
  }
  if (options.uid === 0 || options.gid === 0) throw new Error("the container must not run as root: Lambda never does");
  const envPairs = Object.entries(options.env).map(([name, value]) => `${name}=${value}`);
  return {
    command: "unshare",
    args: [
      "--mount", "--fork", "--",
      "sh", "-c", SETUP_SCRIPT, "lambda-sandbox",
      options.rootfs, options.mountpoint, String(options.tmpMb ?? 512), options.binds.map((b) => b.target).join(" "),
      ...options.binds.flatMap((b) => [b.source, b.target]), "--",
      "/usr/bin/env", "-i", ...envPairs,
      "/usr/bin/unshare", `--root=${options.mountpoint}`, `--wd=${options.workingDir}`,
      `--setuid=${options.uid}`, `--setgid=${options.gid}`, "--",
      ...options.argv,
    ],
  };
}
