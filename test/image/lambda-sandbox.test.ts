// The image test's model of how Lambda starts a container (test/image/lambda-sandbox.ts), checked
// without buildah or root.
import { describe, expect, it } from "vitest";
import { buildArgFlags, lambdaEnvironment, parseImageConfig, sandboxCommand } from "./lambda-sandbox";

const inspected = JSON.stringify({
  Type: "buildah 0.0.1",
  OCIv1: {
    config: {
      Env: ["PATH=/usr/local/bin:/usr/bin", "LAMBDA_TASK_ROOT=/var/task", "NODE_OPTIONS=--a=b"],
      Entrypoint: ["/lambda-entrypoint.sh"],
      Cmd: ["handler.handler"],
      WorkingDir: "/var/task",
    },
  },
});

describe("the image test's Lambda start-up model", () => {
  it("reads ENTRYPOINT, CMD, ENV and WORKDIR from buildah inspect's OCI config", () => {
    expect(parseImageConfig(inspected)).toEqual({
      entrypoint: ["/lambda-entrypoint.sh"],
      cmd: ["handler.handler"],
      env: { PATH: "/usr/local/bin:/usr/bin", LAMBDA_TASK_ROOT: "/var/task", NODE_OPTIONS: "--a=b" },
      workingDir: "/var/task",
    });
    expect(parseImageConfig(JSON.stringify({ OCIv1: { config: {} } }))).toEqual({ entrypoint: [], cmd: [], env: {}, workingDir: "/" });
    expect(() => parseImageConfig(JSON.stringify({ Type: "buildah 0.0.1" }))).toThrow(/OCIv1\.config/);
  });

  it("starts with _HANDLER empty and Lambda's reserved variables over the image's and the function's", () => {
    const env = lambdaEnvironment({
      imageEnv: { PATH: "/usr/local/bin:/usr/bin", _HANDLER: "from-image.handler", LAMBDA_TASK_ROOT: "/elsewhere" },
      functionEnv: { OUTPUT_BUCKET: "out", AWS_REGION: "eu-west-3", AWS_LAMBDA_RUNTIME_API: "spoofed:1" },
      runtimeApi: "127.0.0.1:9001",
    });
    expect(env).toMatchObject({
      PATH: "/usr/local/bin:/usr/bin",
      OUTPUT_BUCKET: "out",
      _HANDLER: "",
      AWS_LAMBDA_RUNTIME_API: "127.0.0.1:9001",
      LAMBDA_TASK_ROOT: "/var/task",
      AWS_REGION: "eu-west-3",
      AWS_DEFAULT_REGION: "eu-west-3",
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "1024",
    });
  });

  it("turns KNOCK_IMAGE_BUILD_ARGS into --build-arg flags and names a malformed item", () => {
    expect(buildArgFlags(" LIBGOUROU_REPO=git://127.0.0.1/libgourou\n UPDFPARSER_REF=abc ")).toEqual([
      "--build-arg", "LIBGOUROU_REPO=git://127.0.0.1/libgourou", "--build-arg", "UPDFPARSER_REF=abc",
    ]);
    expect(buildArgFlags(undefined)).toEqual([]);
    expect(() => buildArgFlags("LIBGOUROU_REPO")).toThrow(/"LIBGOUROU_REPO" is not NAME=value/);
  });

  it("runs ENTRYPOINT+CMD with exactly the given environment, as a non-root user, in the working directory", () => {
    const { command, args } = sandboxCommand({
      rootfs: "/var/lib/containers/x/merged",
      mountpoint: "/tmp/root",
      binds: [{ source: "/repo/test/fixtures/libgourou", target: "/opt/knock-test/libgourou" }],
      workingDir: "/var/task",
      uid: 993,
      gid: 990,
      env: { _HANDLER: "", A: "1" },
      argv: ["/lambda-entrypoint.sh", "handler.handler"],
    });
    expect(command).toBe("unshare");
    expect(args.slice(0, 3)).toEqual(["--mount", "--fork", "--"]);
    const inner = args.slice(args.indexOf("/usr/bin/env"));
    expect(inner).toEqual([
      "/usr/bin/env", "-i", "_HANDLER=", "A=1",
      "/usr/bin/unshare", "--root=/tmp/root", "--wd=/var/task", "--setuid=993", "--setgid=990", "--",
      "/lambda-entrypoint.sh", "handler.handler",
    ]);
    const script = args[args.indexOf("-c") + 1];
    expect(script).toMatch(/mount -o remount,bind,ro "\$root"\n/);
    expect(script).toMatch(/mount -t tmpfs .* "\$root\/tmp"/);
  });

  it("refuses to run the container as root, which Lambda never does", () => {
    const base = { rootfs: "/r", mountpoint: "/m", binds: [], workingDir: "/", env: {}, argv: ["/x"] };
    expect(() => sandboxCommand({ ...base, uid: 0, gid: 990 })).toThrow(/must not run as root/);
    expect(() => sandboxCommand({ ...base, uid: 993, gid: 990, binds: [{ source: "/a", target: "relative" }] })).toThrow(/absolute path/);
  });
});
