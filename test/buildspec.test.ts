import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CACHE_TAG, DIGEST_VARIABLE, createBuildspec, dockerPlatform, renderBuildspec } from "../infra/buildspec";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;
const REPO = "123456789012.dkr.ecr.us-east-2.amazonaws.com/knock-lambda-dev";

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
    expect(build).not.toContain("--build-arg");
  });

  it("uses a docker-container builder (the registry cache exporter needs one)", () => {
    expect(spec.phases.pre_build.commands).toContain("docker buildx create --name knock-builder --driver docker-container --use");
  });

  it("has commands that bash can parse", () => {
    for (const command of [...spec.phases.pre_build.commands, ...spec.phases.build.commands]) {
      const result = spawnSync("bash", ["-n", "-c", command], { encoding: "utf8" });
      expect(result.stderr, command).toBe("");
      expect(result.status, command).toBe(0);
    }
  });
});

// Runs the buildspec's commands the way CodeBuild does (one bash session, stop at the first failing
// command), with `aws` and `docker` replaced by small scripts that behave like them: a real login
// pipe, a real buildx metadata file. Proves the digest really ends up in the exported variable.
describe("running the buildspec's commands", () => {
  let work: string;
  afterEach(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

  function runPhases(metadata: string | undefined, loginFails = false) {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "knock-buildspec-"));
    const bin = path.join(work, "bin");
    fs.mkdirSync(bin);
    const log = path.join(work, "calls.log");
    fs.writeFileSync(path.join(bin, "aws"), `#!/bin/sh\necho "aws $*" >> "${log}"\n${loginFails ? "exit 255" : "echo token-123"}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "docker"), [
      "#!/bin/bash",
      `echo "docker $*" >> "${log}"`,
      'if [ "$1" = login ]; then pw=$(cat); [ -n "$pw" ] || { echo "empty password" >&2; exit 1; }; fi',
      'if [ "$1 $2" = "buildx build" ]; then',
      '  while [ $# -gt 0 ]; do if [ "$1" = --metadata-file ]; then shift; meta="$1"; fi; shift; done',
      metadata === undefined ? "  :" : `  printf '%s' '${metadata}' > "$meta"`,
      "fi",
    ].join("\n") + "\n", { mode: 0o755 });
    const spec = createBuildspec("x86_64");
    const commands = [...spec.phases.pre_build.commands, ...spec.phases.build.commands];
    const script = ["set -e", ...commands, `echo "EXPORTED ${DIGEST_VARIABLE}=$${DIGEST_VARIABLE}"`].join("\n");
    const result = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, ...spec.env.variables, PATH: `${bin}:${process.env.PATH}`, ECR_REPOSITORY_URI: REPO, AWS_DEFAULT_REGION: "us-east-2", CODEBUILD_BUILD_NUMBER: "7" },
    });
    return { ...result, calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "" };
  }

  it("logs in to the repository's registry, builds, and exports the pushed digest", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST, "image.name": `${REPO}:latest` }));
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`EXPORTED ${DIGEST_VARIABLE}=${DIGEST}`);
    expect(result.calls).toContain("docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-2.amazonaws.com\n");
    expect(result.calls).toContain(`--tag ${REPO}:build-7`);
  });

  it("fails the build when buildx reports no digest", () => {
    const result = runPhases(JSON.stringify({ "image.name": `${REPO}:latest` }));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("no image digest in buildx metadata");
    expect(result.stdout).not.toContain("EXPORTED");
  });

  it("fails at login when the registry token cannot be fetched", () => {
    const result = runPhases(JSON.stringify({ "containerimage.digest": DIGEST }), true);
    expect(result.status).not.toBe(0);
    expect(result.calls).not.toContain("buildx build");
  });
});
