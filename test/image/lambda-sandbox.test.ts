// The image test's model of how Lambda starts a container (test/image/lambda-sandbox.ts), checked
// without buildah or root.
import { describe, expect, it } from "vitest";
import {
  buildArgFlags,
  hostsFile,
  interfacesBesidesLoopback,
  lambdaEnvironment,
  namespaceSetup,
  operatorHost,
  parseImageConfig,
  sandboxCommand,
} from "./lambda-sandbox";

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
      binds: [
        { source: "/repo/test/fixtures/libgourou", target: "/opt/knock-test/libgourou" },
        { source: "/tmp/x/hosts", target: "/etc/hosts" },
      ],
      workingDir: "/var/task",
      uid: 993,
      gid: 990,
      env: { _HANDLER: "", A: "1" },
      argv: ["/lambda-entrypoint.sh", "handler.handler"],
    });
    expect(command).toBe("unshare");
    expect(args.slice(0, 3)).toEqual(["--mount", "--fork", "--"]);
    // After the script and its name: rootfs, mountpoint, tmpfs size, then the binds as pairs up to "--".
    const script = args[args.indexOf("-c") + 1];
    const scriptArgs = args.slice(args.indexOf("-c") + 3, args.indexOf("/usr/bin/env"));
    expect(scriptArgs).toEqual([
      "/var/lib/containers/x/merged", "/tmp/root", "512",
      "/repo/test/fixtures/libgourou", "/opt/knock-test/libgourou", "/tmp/x/hosts", "/etc/hosts", "--",
    ]);
    const inner = args.slice(args.indexOf("/usr/bin/env"));
    expect(inner).toEqual([
      "/usr/bin/env", "-i", "_HANDLER=", "A=1",
      "/usr/bin/unshare", "--root=/tmp/root", "--wd=/var/task", "--setuid=993", "--setgid=990", "--",
      "/lambda-entrypoint.sh", "handler.handler",
    ]);
    expect(script).toMatch(/mount -o remount,bind,ro "\$root"\n/);
    expect(script).toMatch(/mount -t tmpfs .* "\$root\/tmp"/);
    // Each bind is read-only; a file's missing target is made as a file, a folder's as a folder,
    // both before the root turns read-only.
    expect(script).toMatch(/mount --bind "\$1" "\$root\$2"\n\s*mount -o remount,bind,ro "\$root\$2"/);
    expect(script).toMatch(/\[ -e "\$root\$2" \] \|\| : > "\$root\$2"/);
    expect(script.indexOf('mount --bind "$1"')).toBeLessThan(script.indexOf('mount -o remount,bind,ro "$root"\n'));
  });

  it("refuses to run the container as root, which Lambda never does", () => {
    const base = { rootfs: "/r", mountpoint: "/m", binds: [], workingDir: "/", env: {}, argv: ["/x"] };
    expect(() => sandboxCommand({ ...base, uid: 0, gid: 990 })).toThrow(/must not run as root/);
    expect(() => sandboxCommand({ ...base, uid: 993, gid: 990, binds: [{ source: "/a", target: "relative" }] })).toThrow(/absolute path/);
    expect(() => sandboxCommand({ ...base, uid: 993, gid: 990, binds: [{ source: "/a", target: "/tmp/a" }] })).toThrow(/not be under \/tmp/);
  });
});

describe("the image test's network", () => {
  it("writes an /etc/hosts with localhost and the given hosts, and refuses lines glibc would skip", () => {
    expect(hostsFile([{ address: "2d00::7e57", names: ["adeactivate.adobe.com", "acs.example-library.test"] }])).toBe(
      "# /etc/hosts of the image test's container (test/image/run-image.ts)\n" +
        "127.0.0.1\tlocalhost\n" +
        "::1\tlocalhost ip6-localhost ip6-loopback\n" +
        "2d00::7e57\tadeactivate.adobe.com acs.example-library.test\n",
    );
    expect(() => hostsFile([{ address: "acs.example.test", names: ["x.test"] }])).toThrow(/not an IP address/);
    expect(() => hostsFile([{ address: "192.0.2.1", names: [] }])).toThrow(/names no host/);
    expect(() => hostsFile([{ address: "192.0.2.1", names: ["a b.test"] }])).toThrow(/"a b.test" is not a host name/);
    expect(() => hostsFile([{ address: "192.0.2.1", names: ["-x.test"] }])).toThrow(/not a host name/);
  });

  it("finds the host of an ACSM's operatorURL", () => {
    expect(operatorHost("<fulfillmentToken><operatorURL>\n https://acs.example-library.test/fulfillment </operatorURL></fulfillmentToken>")).toBe(
      "acs.example-library.test",
    );
    expect(() => operatorHost("<fulfillmentToken/>")).toThrow(/no <operatorURL>/);
  });

  it("brings up lo and puts the address on it as a host address", () => {
    expect(namespaceSetup("2d00::7e57")).toEqual([
      ["ip", "link", "set", "lo", "up"],
      ["ip", "address", "add", "2d00::7e57/128", "dev", "lo", "nodad"],
    ]);
    expect(namespaceSetup("45.0.0.1")[1]).toEqual(["ip", "address", "add", "45.0.0.1/32", "dev", "lo"]);
    expect(() => namespaceSetup("lo")).toThrow(/not an IP address/);
  });

  it("names every interface besides lo in ip -o link output", () => {
    const fresh = "1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n";
    expect(interfacesBesidesLoopback(fresh)).toEqual([]);
    const host = `${fresh}2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    link/ether 02:42:ac:11:00:02\n3: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420\n`;
    expect(interfacesBesidesLoopback(host)).toEqual(["eth0", "wg0"]);
  });
});
