import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BUILDKIT_FALLBACK_IMAGE, BUILDKIT_IMAGE, CACHE_TAG, DIGEST_VARIABLE, SOURCE_BUILD_ARGS, createBuildspec, dockerPlatform, renderBuildspec } from "../infra/buildspec";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;
const REPO = "123456789012.dkr.ecr.us-east-2.amazonaws.com/knock-lambda-dev";

/** Absolute path of `tool` on `searchPath` (the way a shell looks it up), or a failure naming it. */
function toolPath(tool: string, searchPath = process.env.PATH ?? ""): string {
  for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, tool);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new Error(`${tool} is not on PATH; the buildspec tests need it (install ${tool})`);
}

/**
 * Runs bash so that nothing from the machine it runs on can change what the commands do.
 *
 * bash reads start-up files even when it is not interactive (bash manual, "Bash Startup Files"):
 * `$BASH_ENV` for any non-interactive shell, and `~/.bashrc` when it thinks it was started by a
 * remote shell daemon — which bash decides from its standard input being a socket (shell.c,
 * `isnetconn`) with SHLVL unset or 0, exactly what Node's stdio pipes (socket pairs) and a CI
 * runner give it. A `.bashrc` that puts a real `aws` first on PATH then replaces the stand-in. So:
 * `--norc --noprofile`, stdin from /dev/null, and an environment built from nothing (no BASH_ENV,
 * ENV, SHELLOPTS, exported functions or HOME of the user's).
 */
function hermeticBash(args: string[], env: Record<string, string>, bash = toolPath("bash")) {
  return spawnSync(bash, ["--noprofile", "--norc", ...args], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
}

describe("the buildspec", () => {
  const spec = JSON.parse(renderBuildspec(createBuildspec("x86_64")));

  it("is a version 0.2 buildspec that exports the digest variable the runner reads", () => {
    expect(spec.version).toBe("0.2");
    expect(spec.env["exported-variables"]).toEqual([DIGEST_VARIABLE]);
    // CodeBuild refuses exported variables whose names start with AWS_.
    expect(DIGEST_VARIABLE.startsWith("AWS_")).toBe(false);
    expect(spec.phases.pre_build["on-failure"]).toBe("ABORT");
    expect(spec.phases.build["on-failure"]).toBe("ABORT");
  });

  it("targets the function's architecture", () => {
    expect(dockerPlatform("x86_64")).toBe("linux/amd64");
    expect(dockerPlatform("arm64")).toBe("linux/arm64");
    expect(JSON.parse(renderBuildspec(createBuildspec("arm64"))).env.variables.TARGET_PLATFORM).toBe("linux/arm64");
  });

  it("builds one platform without attestations, with an ECR-compatible registry cache, and pushes", () => {
    const build = spec.phases.build.commands.find((c: string) => c.startsWith("docker buildx build"));
    expect(build).toContain('--platform "$TARGET_PLATFORM"');
    expect(build).toContain("--provenance=false");
    expect(build).toContain("--sbom=false");
    expect(build).toContain(`--cache-from "type=registry,ref=$ECR_REPOSITORY_URI:${CACHE_TAG}"`);
    expect(build).toContain(`--cache-to "type=registry,ref=$ECR_REPOSITORY_URI:${CACHE_TAG},mode=max,image-manifest=true,oci-mediatypes=true"`);
    expect(build).toContain("--push");
    expect(build).toMatch(/--file lambda\/Dockerfile lambda$/);
    // Only the source repositories are build arguments; every other Dockerfile default stands.
    expect(build.match(/--build-arg "[^"]*"/g)).toEqual(['--build-arg "LIBGOUROU_REPO=$LIBGOUROU_REPO"', '--build-arg "UPDFPARSER_REPO=$UPDFPARSER_REPO"']);
    expect([...SOURCE_BUILD_ARGS]).toEqual(["LIBGOUROU_REPO", "UPDFPARSER_REPO"]);
  });

  it("runs a docker-container builder (the registry cache exporter needs one) from a pinned BuildKit on public ECR, with buildx-stable-1 as the fallback", () => {
    expect(spec.phases.pre_build.commands.some((c: string) => c.includes('docker buildx create --name knock-builder --driver docker-container --driver-opt "image=$buildkit" --use'))).toBe(true);
    expect(spec.env.variables.BUILDKIT_IMAGE).toBe(BUILDKIT_IMAGE);
    expect(spec.env.variables.BUILDKIT_FALLBACK_IMAGE).toBe(BUILDKIT_FALLBACK_IMAGE);
    // A released version first; the tag every public use of this mirror names as the fallback.
    expect(BUILDKIT_IMAGE).toMatch(/^public\.ecr\.aws\/vend\/moby\/buildkit:v\d+\.\d+\.\d+$/);
    expect(BUILDKIT_FALLBACK_IMAGE).toBe("public.ecr.aws/vend/moby/buildkit:buildx-stable-1");
  });

  it("has commands that bash can parse", () => {
    for (const command of [...spec.phases.pre_build.commands, ...spec.phases.build.commands]) {
      const result = hermeticBash(["-n", "-c", command], {});
      expect(result.stderr, command).toBe("");
      expect(result.status, command).toBe(0);
    }
  });
});

// Runs the buildspec's commands the way CodeBuild does (one bash session, stop at the first failing
// command), with `aws` and `docker` replaced by small scripts that behave like them: a real login
// pipe, a real buildx metadata file. Proves the digest really ends up in the exported variable.
describe("running the buildspec's commands", () => {
  const scratch: string[] = [];
  afterEach(() => { for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true }); });

  function tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    scratch.push(dir);
    return dir;
  }

  /**
   * Runs both phases against the stand-ins. `ambient` is the environment of the machine running the
   * tests: it is used only to find bash and the real tools the commands need (jq, cat), which are
   * linked beside the stand-ins so that PATH can name that one directory.
   */
  function runPhases(metadata: string | undefined, options: { loginFails?: boolean; publicLoginFails?: boolean; unpullable?: readonly string[]; ambient?: NodeJS.ProcessEnv } = {}) {
    const ambientPath = (options.ambient ?? process.env).PATH ?? "";
    const bash = toolPath("bash", ambientPath);
    const work = tempDir("knock-buildspec-");
    const bin = path.join(work, "bin");
    const home = path.join(work, "home");
    fs.mkdirSync(bin);
    fs.mkdirSync(home);
    for (const tool of ["jq", "cat"]) fs.symlinkSync(toolPath(tool, ambientPath), path.join(bin, tool));
    const log = path.join(work, "calls.log");
    // `aws ecr get-login-password` / `aws ecr-public get-login-password` print the token on stdout;
    // the CLI exits 255 on a failed call (e.g. AccessDenied while a new role's policy propagates).
    fs.writeFileSync(path.join(bin, "aws"), [
      "#!/bin/sh",
      `echo "aws $*" >> "${log}"`,
      `if [ "$1" = ecr ]; then ${options.loginFails ? "exit 255" : "echo token-123"}; fi`,
      `if [ "$1" = ecr-public ]; then ${options.publicLoginFails ? 'echo "An error occurred (AccessDeniedException) when calling the GetAuthorizationToken operation" >&2; exit 255' : "echo public-token-456"}; fi`,
    ].join("\n") + "\n", { mode: 0o755 });
    const unpullable = (options.unpullable ?? []).map((image) => `"${image}"`).join(" ");
    // `docker login --password-stdin` refuses an empty password; `buildx build --metadata-file` writes
    // the build result (containerimage.digest) as JSON to that file.
    fs.writeFileSync(path.join(bin, "docker"), [
      `#!${bash}`,
      `echo "docker $*" >> "${log}"`,
      'if [ "$1" = login ]; then pw=$(cat); [ -n "$pw" ] || { echo "empty password" >&2; exit 1; }; fi',
      // `docker pull` of a reference the registry does not have: "manifest unknown", exit status 1.
      `if [ "$1" = pull ]; then for missing in ${unpullable}; do if [ "$3" = "$missing" ]; then echo "Error response from daemon: manifest for $3 not found: manifest unknown" >&2; exit 1; fi; done; echo "$3"; fi`,
      'if [ "$1 $2" = "buildx build" ]; then',
      '  while [ $# -gt 0 ]; do if [ "$1" = --metadata-file ]; then shift; meta="$1"; fi; shift; done',
      metadata === undefined ? "  :" : `  printf '%s' '${metadata}' > "$meta"`,
      "fi",
    ].join("\n") + "\n", { mode: 0o755 });
    const spec = createBuildspec("x86_64");
    const commands = [...spec.phases.pre_build.commands, ...spec.phases.build.commands];
    // CodeBuild runs each command in turn and fails the phase on the first non-zero exit status; it
    // does not `set -e` (which would ignore a failure inside an && list).
    const checked = commands.flatMap((command) => [command, 'status=$?; if [ "$status" -ne 0 ]; then exit "$status"; fi']);
    const script = [...checked, `echo "EXPORTED ${DIGEST_VARIABLE}=$${DIGEST_VARIABLE}"`].join("\n");
    const result = hermeticBash(["-c", script], {
      PATH: bin,
      HOME: home,
      LC_ALL: "C",
      ...spec.env.variables,
      ECR_REPOSITORY_URI: REPO,
      AWS_DEFAULT_REGION: "us-east-2",
      CODEBUILD_BUILD_NUMBER: "7",
      LIBGOUROU_REPO: "https://mirror.example/libgourou.git",
      UPDFPARSER_REPO: "https://mirror.example/uPDFParser.git",
    }, bash);
    return { ...result, calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "" };
  }

  it("logs in to the repository's registry, builds, and exports the pushed digest", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST, "image.name": `${REPO}:latest` }));
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`EXPORTED ${DIGEST_VARIABLE}=${DIGEST}`);
    expect(result.calls).toContain("docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-2.amazonaws.com\n");
    expect(result.calls).toContain("docker login --username AWS --password-stdin public.ecr.aws\n");
    expect(result.calls).toContain("aws ecr-public get-login-password --region us-east-1\n");
    expect(result.calls).toContain(`docker buildx create --name knock-builder --driver docker-container --driver-opt image=${BUILDKIT_IMAGE} --use\n`);
    expect(result.stdout).toContain(`BuildKit image: ${BUILDKIT_IMAGE}`);
    expect(result.calls).toContain(`--tag ${REPO}:build-7`);
    expect(result.calls).toContain("--build-arg LIBGOUROU_REPO=https://mirror.example/libgourou.git --build-arg UPDFPARSER_REPO=https://mirror.example/uPDFParser.git");
  });

  it("falls back to buildx-stable-1 when the pinned BuildKit cannot be pulled, and says so", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), { unpullable: [BUILDKIT_IMAGE] });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain(`warning: could not pull ${BUILDKIT_IMAGE}; using ${BUILDKIT_FALLBACK_IMAGE} instead`);
    expect(result.stdout).toContain(`BuildKit image: ${BUILDKIT_FALLBACK_IMAGE}`);
    expect(result.calls).toContain(`docker buildx create --name knock-builder --driver docker-container --driver-opt image=${BUILDKIT_FALLBACK_IMAGE} --use\n`);
    expect(result.stdout).toContain(`EXPORTED ${DIGEST_VARIABLE}=${DIGEST}`);
  });

  it("fails before building when neither BuildKit image can be pulled", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), { unpullable: [BUILDKIT_IMAGE, BUILDKIT_FALLBACK_IMAGE] });
    expect(result.status).not.toBe(0);
    expect(result.calls).not.toContain("buildx create");
    expect(result.calls).not.toContain("buildx build");
  });

  it("still builds, anonymously, when the public ECR login fails", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), { publicLoginFails: true });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain("warning: could not log in to public.ecr.aws; pulling from it anonymously");
    expect(result.calls).toContain("docker buildx build");
    expect(result.stdout).toContain(`EXPORTED ${DIGEST_VARIABLE}=${DIGEST}`);
  });

  it("fails the build when buildx reports no digest", () => {
    const result = runPhases(JSON.stringify({ "image.name": `${REPO}:latest` }));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("no image digest in buildx metadata");
    expect(result.stdout).not.toContain("EXPORTED");
  });

  it("fails at login when the registry token cannot be fetched", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), { loginFails: true });
    expect(result.status).not.toBe(0);
    expect(result.calls).not.toContain("buildx build");
  });

  it("runs the stand-ins even on a machine whose ~/.bashrc and BASH_ENV put a real aws first on PATH", () => {
    // Prepare: a machine whose start-up files prepend an `aws` that records being run and fails.
    const machine = tempDir("knock-hostile-home-");
    const hostileBin = path.join(machine, "bin");
    const marker = path.join(machine, "hostile-aws-ran");
    fs.mkdirSync(hostileBin);
    fs.writeFileSync(path.join(hostileBin, "aws"), `#!/bin/sh\necho "$*" >> "${marker}"\nexit 42\n`, { mode: 0o755 });
    const prepend = `export PATH="${hostileBin}:$PATH"\n`;
    fs.writeFileSync(path.join(machine, ".bashrc"), prepend);
    fs.writeFileSync(path.join(machine, "env.sh"), prepend);
    const ambient: NodeJS.ProcessEnv = { ...process.env, HOME: machine, BASH_ENV: path.join(machine, "env.sh"), ENV: path.join(machine, "env.sh") };
    delete ambient.SHLVL; // as under a CI runner or an IDE, where bash takes a socket stdin for rshd

    // Control: bash started the ordinary way on this machine does run the hostile aws, so the
    // machine below really is hostile and the assertions after it can fail.
    const control = spawnSync("bash", ["-c", "aws ecr get-login-password"], { encoding: "utf8", env: ambient });
    expect(control.status).toBe(42);
    expect(fs.readFileSync(marker, "utf8")).toContain("ecr get-login-password");
    fs.rmSync(marker);

    // Act
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), { ambient });

    // Assess
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.calls).toContain('aws ecr get-login-password --region us-east-2\n');
    expect(result.stdout).toContain(`EXPORTED ${DIGEST_VARIABLE}=${DIGEST}`);
    expect(fs.existsSync(marker)).toBe(false);
  });
});
