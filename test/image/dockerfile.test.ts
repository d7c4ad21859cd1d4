// The image cannot be built in the test suite (no Docker here, no network), so these tests hold the
// Dockerfile to the properties that matter when CodeBuild builds it and Lambda runs it. Every rule
// is also run against a copy of the Dockerfile broken on purpose, to show that the rule can fail.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "dockerfile-utils";
import { DockerfileParser, type Env, type Instruction } from "dockerfile-ast";
import { describe, expect, it } from "vitest";

const lambdaDir = join(__dirname, "..", "..", "lambda");
const dockerfile = readFileSync(join(lambdaDir, "Dockerfile"), "utf8");

/** The Node.js image of every Node stage: Node 24 LTS on Debian bookworm, from the public ECR mirror. */
const NODE_IMAGE = "public.ecr.aws/docker/library/node:24-bookworm-slim";
const TOOLS = ["adept_activate", "acsmdownloader", "adept_remove", "adept_loan_mgt"] as const;
const LAYER_KEYWORDS = new Set(["RUN", "COPY", "ADD"]);

interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into its stages, each with the instructions after its FROM. */
function stagesOf(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction.getKeyword() === "FROM") {
      const args = instruction.getArguments().map((a) => a.getValue());
      const asIndex = args.findIndex((a) => a.toUpperCase() === "AS");
      stages.push({ name: asIndex >= 0 ? args[asIndex + 1] : null, image: args.filter((a) => !a.startsWith("--"))[0], instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return stages;
}

/** An instruction's arguments as written, continuation lines joined. */
function body(instruction: Instruction): string {
  return (instruction.getRawArgumentsContent() ?? "").replace(/\\\r?\n/g, " ");
}

function flag(instruction: Instruction, name: string): string | undefined {
  const flags = (instruction as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] }).getFlags?.() ?? [];
  return flags.find((f) => f.getName() === name)?.getValue() ?? undefined;
}

function argDefaults(text: string): Map<string, string> {
  const defaults = new Map<string, string>();
  for (const arg of DockerfileParser.parse(text).getARGs()) {
    const property = arg.getProperty();
    if (property) defaults.set(property.getName(), property.getValue() ?? "");
  }
  return defaults;
}

function runsOf(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.getKeyword() === "RUN").map(body);
}

function finalStage(text: string): Stage {
  const stages = stagesOf(text);
  return stages[stages.length - 1];
}

// ---- the rules; each returns the problems it finds (empty = the rule holds) -------------------

function lintProblems(text: string): string[] {
  return validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

function baseImageProblems(text: string): string[] {
  const stages = stagesOf(text);
  const stageNames = new Set(stages.map((s) => s.name).filter((n): n is string => n !== null));
  const problems: string[] = [];
  for (const { image } of stages) {
    if (stageNames.has(image)) continue;
    const match = /^public\.ecr\.aws\/docker\/library\/[a-z0-9._-]+:([A-Za-z0-9._-]+)(@sha256:[0-9a-f]{64})?$/.exec(image);
    if (!match) problems.push(`${image} is not an official image from public.ecr.aws pinned by tag`);
    else if (match[1] === "latest") problems.push(`${image} uses the moving tag "latest"`);
  }
  // Node 24 is the active LTS line (22 leaves maintenance in April 2027); the handler is built, the
  // runtime client compiled and both run on the same release, so every Node stage names the same image.
  const runtime = finalStage(text).image;
  if (runtime !== NODE_IMAGE) problems.push(`the runtime stage is ${runtime}, not ${NODE_IMAGE}`);
  for (const { image } of stages.filter((s) => /\/node:/.test(s.image) && s.image !== NODE_IMAGE)) {
    problems.push(`a Node stage is ${image}, not ${NODE_IMAGE}`);
  }
  return problems;
}

/**
 * libgourou releases the image may pin, each with the commit its tag points at upstream and the
 * uPDFParser revision it is packaged with. 0.8.7 is absent on purpose: Adobe's activation servers stopped
 * accepting it in early 2026 (fixed in 0.8.8). 0.8.9 is commit 324c566 "Fix help of adept_load_mgt"; only
 * that abbreviation is publicly recorded, so the Dockerfile checks the commit by prefix and prints the
 * full id.
 */
const LIBGOUROU_RELEASES: Readonly<Record<string, { commit: string; updfparser: string }>> = {
  "0.8.9": { commit: "324c566", updfparser: "6060d123441a06df699eb275ae5ffdd50409b8f3" },
};

function sourceArgProblems(text: string): string[] {
  const defaults = argDefaults(text);
  const problems: string[] = [];
  for (const name of ["LIBGOUROU_REPO", "UPDFPARSER_REPO"]) {
    const value = defaults.get(name);
    if (!value || !/^https:\/\/forge\.soutade\.fr\/soutade\/[A-Za-z]+\.git$/.test(value)) {
      problems.push(`ARG ${name} must default to the upstream repository on forge.soutade.fr (is ${value ?? "missing"})`);
    }
  }
  const version = defaults.get("LIBGOUROU_VERSION") ?? "";
  const release = LIBGOUROU_RELEASES[version];
  if (!release) {
    problems.push(`libgourou must default to a release that can still activate (${Object.keys(LIBGOUROU_RELEASES).join(", ")}), not ${version || "none"}`);
  } else {
    if (defaults.get("LIBGOUROU_REF") !== `v${version}`) problems.push(`LIBGOUROU_REF must be the release's tag v${version} (is ${defaults.get("LIBGOUROU_REF") ?? "missing"})`);
    if (defaults.get("LIBGOUROU_COMMIT") !== release.commit) problems.push(`LIBGOUROU_COMMIT must be ${version}'s commit ${release.commit} (is ${defaults.get("LIBGOUROU_COMMIT") ?? "missing"})`);
    if (defaults.get("UPDFPARSER_REF") !== release.updfparser) problems.push(`uPDFParser must default to the commit libgourou ${version} is built with (${release.updfparser})`);
  }
  const runs = stagesOf(text).flatMap(runsOf).join("\n");
  // The tag is checked against the pinned commit, because tags can move.
  if (!/case "\$commit" in \("\$LIBGOUROU_COMMIT"\*\)/.test(runs)) problems.push("no RUN checks that LIBGOUROU_REF resolves to LIBGOUROU_COMMIT");
  for (const name of ["LIBGOUROU_REPO", "LIBGOUROU_REF", "UPDFPARSER_REPO", "UPDFPARSER_REF"]) {
    if (!runs.includes(`"$${name}"`)) problems.push(`ARG ${name} is never used by a RUN, so a mirror could not replace it`);
  }
  return problems;
}

function remoteAddProblems(text: string): string[] {
  return stagesOf(text)
    .flatMap((s) => s.instructions)
    .filter((i) => i.getKeyword() === "ADD" && /(https?|git|ssh):\/\/|git@|\.git\b/.test(body(i)))
    .map((i) => `ADD fetches a remote source unverified: ${body(i)}`);
}

function placeholderProblems(text: string): string[] {
  const problems: string[] = [];
  const patterns: [RegExp, string][] = [
    [/\|\|\s*(true|:)(\s|;|$)/, "`|| true` hides a failing step"],
    [/\btouch\b/, "`touch` can fake a missing file"],
    [/\bset\s+\+e\b/, "`set +e` ignores failures"],
    [/>\s*\S*(adept|acsm)/, "writes a file over a tool"],
    [/\bexit\s+0\b/, "`exit 0` can end a step early with success"],
  ];
  for (const run of stagesOf(text).flatMap(runsOf)) {
    for (const [pattern, why] of patterns) if (pattern.test(run)) problems.push(`${why}: ${run.trim().slice(0, 120)}`);
  }
  return problems;
}

/** The tools must be built and then run (`-V`) in a failing-fast RUN, in the build and the runtime. */
function toolVerificationProblems(text: string): string[] {
  const problems: string[] = [];
  const stages = stagesOf(text);
  const toolStage = stages.find((s) => runsOf(s).some((r) => /make\b.*STATIC_UTILS=1/.test(r)));
  if (!toolStage) return ["no stage builds libgourou's utils with STATIC_UTILS=1"];
  const checks = (stage: Stage) =>
    runsOf(stage).filter((r) => /\bset -eu?\b/.test(r) && /"?\$\{?tool\}?"?\s+-V\b|\s-V\b/.test(r));
  for (const [label, stage] of [["build", toolStage], ["runtime", finalStage(text)]] as const) {
    const verifying = checks(stage).join("\n");
    for (const tool of TOOLS) {
      if (!verifying.includes(tool)) problems.push(`${label} stage does not run ${tool} -V in a set -e RUN`);
    }
    // sh ignores set -e inside every part of an && list but the last: a failing -V in a loop
    // followed by `&& ...` would not stop the build.
    if (/\bdone\s*&&/.test(verifying) || /&&\s*for\b[\s\S]*\bdone\s*&&/.test(verifying)) {
      problems.push(`${label} stage runs the -V loop inside an && list, where set -e does not apply`);
    }
  }
  return problems;
}

function finalLayerProblems(text: string): string[] {
  const stages = stagesOf(text);
  const runtime = finalStage(text);
  const layers = runtime.instructions.filter((i) => LAYER_KEYWORDS.has(i.getKeyword()));
  const last = layers[layers.length - 1];
  if (!last || last.getKeyword() !== "COPY") return ["the runtime stage does not end with a COPY"];
  const from = flag(last, "from");
  const args = last.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
  const problems: string[] = [];
  if (!args[0]?.endsWith("dist/handler.js") || args[1] !== "/var/task/handler.js") {
    problems.push(`the last layer copies ${args.join(" ")}, not the handler bundle to /var/task/handler.js`);
  }
  const source = stages.find((s) => s.name === from);
  if (!source) problems.push(`the handler bundle does not come from a build stage (--from=${from})`);
  else {
    const runs = runsOf(source).join("\n");
    if (!/\bnpm ci\b/.test(runs) || /\bnpm (i|install)\b/.test(runs)) problems.push("the handler stage does not install with npm ci");
    const copies = source.instructions.filter((i) => i.getKeyword() === "COPY").map(body).join("\n");
    if (!copies.includes("package-lock.json")) problems.push("the handler stage does not copy the lock file");
  }
  return problems;
}

function runtimeProblems(text: string): string[] {
  const runtime = finalStage(text);
  const problems: string[] = [];
  const envs = new Map<string, string>();
  for (const env of runtime.instructions.filter((i): i is Env => i.getKeyword() === "ENV")) {
    for (const p of env.getProperties()) envs.set(p.getName(), p.getValue() ?? "");
  }
  const binDir = envs.get("LIBGOUROU_BIN_DIR");
  if (!binDir) problems.push("LIBGOUROU_BIN_DIR is not set in the runtime stage");
  if (!envs.get("HOME")?.startsWith("/tmp")) problems.push("HOME must point under /tmp (the only writable path)");
  if (envs.has("NPM_CONFIG_CACHE") && !envs.get("NPM_CONFIG_CACHE")?.startsWith("/tmp")) problems.push("NPM_CONFIG_CACHE must be under /tmp");

  const copies = runtime.instructions.filter((i) => i.getKeyword() === "COPY");
  if (binDir && !copies.some((c) => c.getArguments().map((a) => a.getValue()).at(-1)?.replace(/\/$/, "") === binDir)) {
    problems.push(`no COPY puts the tools into LIBGOUROU_BIN_DIR (${binDir})`);
  }
  for (const copy of copies) {
    const mode = flag(copy, "chmod");
    if (mode !== undefined && (parseInt(mode, 8) & 0o004) === 0) problems.push(`COPY --chmod=${mode} is not readable by other users`);
    if (flag(copy, "chown") !== undefined) problems.push("COPY --chown ties files to one user; Lambda picks its own");
  }
  const runs = runsOf(runtime).join("\n");
  for (const lib of ["libcurl4", "libssl3", "libzip4", "libpugixml1v5", "zlib1g"]) {
    if (!new RegExp(`\\b${lib}\\b`).test(runs)) problems.push(`runtime library ${lib} is not installed`);
  }
  if (!/setpriv --reuid=(?!0\b)\d+/.test(runs)) problems.push("the runtime stage never runs the tools as a non-root user");
  const users = runtime.instructions.filter((i) => i.getKeyword() === "USER").map(body);
  if (users.some((u) => /^\s*(root|0)(:|\s|$)/.test(u))) problems.push("USER root would be ignored by Lambda and hides permission bugs");

  const entrypoint = DockerfileParser.parse(text).getENTRYPOINTs().at(-1);
  const cmd = DockerfileParser.parse(text).getCMDs().at(-1);
  // Lambda leaves _HANDLER unset for an image and aws-lambda-ric 4 reads nothing else, so the
  // client cannot be the ENTRYPOINT itself: a script copied into the image must set _HANDLER from
  // CMD first (test/image/entrypoint.test.ts holds the script to that).
  const entry = entrypoint?.getJSONStrings().map((s) => s.getJSONValue()) ?? [];
  const entryCopy = copies.find((c) => flag(c, "from") === undefined && c.getArguments().map((a) => a.getValue()).at(-1) === entry[0]);
  if (entry.length !== 1 || !entry[0].startsWith("/") || !entryCopy) {
    problems.push(`ENTRYPOINT must be one script copied into the image, in exec form (is ${JSON.stringify(entry)})`);
  } else if ((parseInt(flag(entryCopy, "chmod") ?? "0", 8) & 0o005) !== 0o005) {
    problems.push(`the entrypoint script must be readable and executable by any user (COPY --chmod=${flag(entryCopy, "chmod") ?? "unset"})`);
  }
  const command = cmd?.getJSONStrings().map((s) => s.getJSONValue()) ?? [];
  if (JSON.stringify(command) !== JSON.stringify(["handler.handler"])) problems.push(`CMD must be ["handler.handler"] (is ${JSON.stringify(command)})`);
  const workdirs = runtime.instructions.filter((i) => i.getKeyword() === "WORKDIR").map((i) => body(i).trim());
  if (workdirs.at(-1) !== "/var/task" || envs.get("LAMBDA_TASK_ROOT") !== "/var/task") {
    problems.push("WORKDIR and LAMBDA_TASK_ROOT must both be /var/task, where the handler is copied");
  }
  return problems;
}

function ricProblems(text: string): string[] {
  const ric = stagesOf(text).find((s) => s.instructions.some((i) => i.getKeyword() === "COPY" && body(i).includes("runtime/package-lock.json")));
  if (!ric) return ["no stage installs the runtime client from runtime/package-lock.json"];
  const runs = runsOf(ric).join("\n");
  const problems: string[] = [];
  if (!/\bnpm ci\b/.test(runs)) problems.push("the runtime client is not installed with npm ci");
  for (const tool of ["g++", "make", "cmake", "autoconf", "automake", "libtool", "python3", "xz-utils"]) {
    if (!new RegExp(`(\\s|^)${tool.replace(/\+/g, "\\+")}(\\s|$)`).test(runs)) problems.push(`the runtime client's build lacks ${tool}`);
  }
  if (!/chmod -R a\+rX/.test(runs)) problems.push("the runtime client is not made readable by any user");
  if (!/npm_config_nodedir=\/usr\/local npm ci\b/.test(runs)) problems.push("node-gyp would download Node's headers instead of using the image's");
  return problems;
}

// ---- the tests ---------------------------------------------------------------------------------

/** Replaces one exact piece of the Dockerfile, failing loudly if it is not there. */
function mutate(text: string, from: string | RegExp, to: string): string {
  const changed = text.replace(from, to);
  if (changed === text) throw new Error(`mutation did not apply: ${String(from)}`);
  return changed;
}

describe("lambda/Dockerfile", () => {
  it("passes dockerfile-utils' linter with no errors or warnings", () => {
    expect(lintProblems(dockerfile)).toEqual([]);
    expect(lintProblems(mutate(dockerfile, "WORKDIR /var/task", "WORKDIR var/task\nfrom scratch"))).not.toEqual([]);
  });

  it("takes every base image from the public ECR mirror, pinned by tag, with Node 24 on bookworm in every Node stage", () => {
    expect(baseImageProblems(dockerfile)).toEqual([]);
    expect(baseImageProblems(mutate(dockerfile, "debian:bookworm-slim AS tools", "debian AS tools"))).toHaveLength(1);
    expect(baseImageProblems(mutate(dockerfile, /FROM public\.ecr\.aws\/docker\/library\/node:24-bookworm-slim\n/, "FROM node:24-bookworm-slim\n"))).not.toEqual([]);
    expect(baseImageProblems(mutate(dockerfile, /node:24-bookworm-slim\n\nRUN apt-get update(?![\s\S]*node:24-bookworm-slim)/, "node:22-bookworm-slim\n\nRUN apt-get update"))).not.toEqual([]);
    expect(baseImageProblems(mutate(dockerfile, "node:24-bookworm-slim AS handler", "node:22-bookworm-slim AS handler"))).toEqual([
      "a Node stage is public.ecr.aws/docker/library/node:22-bookworm-slim, not public.ecr.aws/docker/library/node:24-bookworm-slim",
    ]);
  });

  it("builds libgourou and uPDFParser from build arguments that default to the pinned release, its tag checked against its commit", () => {
    expect(sourceArgProblems(dockerfile)).toEqual([]);
    expect(sourceArgProblems(mutate(dockerfile, "ARG LIBGOUROU_REF=v0.8.9", "ARG LIBGOUROU_REF"))).not.toEqual([]);
    expect(sourceArgProblems(mutate(dockerfile, "ARG LIBGOUROU_COMMIT=324c566", "ARG LIBGOUROU_COMMIT=81faf1f"))).toEqual([
      "LIBGOUROU_COMMIT must be 0.8.9's commit 324c566 (is 81faf1f)",
    ]);
    expect(sourceArgProblems(mutate(mutate(dockerfile, "ARG LIBGOUROU_REF=v0.8.9", "ARG LIBGOUROU_REF=v0.8.7"), "ARG LIBGOUROU_VERSION=0.8.9", "ARG LIBGOUROU_VERSION=0.8.7"))).toEqual([
      "libgourou must default to a release that can still activate (0.8.9), not 0.8.7",
    ]);
    expect(sourceArgProblems(mutate(dockerfile, 'case "$commit" in ("$LIBGOUROU_COMMIT"*)', 'case "$commit" in (*)'))).toEqual([
      "no RUN checks that LIBGOUROU_REF resolves to LIBGOUROU_COMMIT",
    ]);
    expect(sourceArgProblems(mutate(dockerfile, /ARG UPDFPARSER_REPO=\S+/, "ARG UPDFPARSER_REPO="))).not.toEqual([]);
    expect(sourceArgProblems(mutate(dockerfile, '"$UPDFPARSER_REF"', "master"))).not.toEqual([]);
  });

  it("pins the release the libgourou stand-in models, so the handler's tests run against the tools the image ships", () => {
    const standin = readFileSync(join(lambdaDir, "..", "test", "fixtures", "libgourou", "libgourou-standin"), "utf8");
    const modelled = /^const VERSION = "([^"]+)";$/m.exec(standin)?.[1];
    expect(modelled).toBeDefined();
    expect(argDefaults(dockerfile).get("LIBGOUROU_VERSION")).toBe(modelled);
  });

  it("never ADDs a remote URL", () => {
    expect(remoteAddProblems(dockerfile)).toEqual([]);
    expect(remoteAddProblems(mutate(dockerfile, "WORKDIR /src", "WORKDIR /src\nADD https://example.com/libgourou.tar.gz /src/"))).toHaveLength(1);
  });

  it("has no step that could paper over a missing tool", () => {
    expect(placeholderProblems(dockerfile)).toEqual([]);
    expect(placeholderProblems(mutate(dockerfile, "STATIC_UTILS=1", "STATIC_UTILS=1 || true"))).toHaveLength(1);
    expect(placeholderProblems(mutate(dockerfile, "install -d -m 0755 /opt/libgourou/bin", "install -d -m 0755 /opt/libgourou/bin && touch /opt/libgourou/bin/adept_remove"))).toHaveLength(1);
    expect(placeholderProblems(mutate(dockerfile, "install -d -m 0755 /opt/libgourou/bin", "echo '#!/bin/sh' > /opt/libgourou/bin/adept_activate"))).toHaveLength(1);
  });

  it("runs each tool with -V in the build stage and again in the runtime stage", () => {
    expect(toolVerificationProblems(dockerfile)).toEqual([]);
    expect(toolVerificationProblems(mutate(dockerfile, "for tool in adept_activate acsmdownloader adept_remove adept_loan_mgt; do \\\n      install", "for tool in adept_activate acsmdownloader adept_remove; do \\\n      install"))).toEqual([
      "build stage does not run adept_loan_mgt -V in a set -e RUN",
    ]);
    expect(toolVerificationProblems(mutate(dockerfile, '"$LIBGOUROU_BIN_DIR/$tool" -V', '"$LIBGOUROU_BIN_DIR/$tool" --help'))).toHaveLength(TOOLS.length);
    expect(toolVerificationProblems(mutate(dockerfile, /done; \\\n {4}AWS_LAMBDA_RUNTIME_API/, "done \\\n && AWS_LAMBDA_RUNTIME_API"))).toEqual([
      "runtime stage runs the -V loop inside an && list, where set -e does not apply",
    ]);
  });

  it("copies the handler bundle, built by npm ci from the lock file, as the very last layer", () => {
    expect(finalLayerProblems(dockerfile)).toEqual([]);
    expect(finalLayerProblems(`${dockerfile}\nRUN echo later\n`)).toEqual(["the runtime stage does not end with a COPY"]);
    expect(finalLayerProblems(mutate(dockerfile, "RUN npm ci --no-audit --no-fund\n", "RUN npm install --no-audit --no-fund\n"))).toEqual([
      "the handler stage does not install with npm ci",
    ]);
  });

  it("works as Lambda runs it: any user, read-only image, an entrypoint script in exec form, handler.handler", () => {
    expect(runtimeProblems(dockerfile)).toEqual([]);
    expect(runtimeProblems(mutate(dockerfile, "HOME=/tmp", "HOME=/root"))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, "--chmod=0644", "--chmod=0600"))).toHaveLength(1);
    // The defect this replaced: the client as ENTRYPOINT dies at init with "_HANDLER environment variable is not set".
    expect(runtimeProblems(mutate(dockerfile, 'ENTRYPOINT ["/lambda-entrypoint.sh"]', 'ENTRYPOINT ["/usr/local/bin/node", "/opt/ric/node_modules/aws-lambda-ric/index.mjs"]'))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, 'ENTRYPOINT ["/lambda-entrypoint.sh"]', "ENTRYPOINT /lambda-entrypoint.sh"))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, "--chmod=0755 lambda-entrypoint.sh", "--chmod=0744 lambda-entrypoint.sh"))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, 'CMD ["handler.handler"]', 'CMD ["index.handler"]'))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, " libpugixml1v5 zlib1g", " zlib1g"))).toHaveLength(1);
    expect(runtimeProblems(mutate(dockerfile, "COPY --from=tools /opt/libgourou/bin /opt/libgourou/bin", "COPY --from=tools /opt/libgourou/bin /usr/local/bin"))).toHaveLength(1);
  });

  it("compiles aws-lambda-ric in its own stage from a lock-file-pinned install", () => {
    expect(ricProblems(dockerfile)).toEqual([]);
    expect(ricProblems(mutate(dockerfile, " cmake autoconf", " autoconf"))).toEqual(["the runtime client's build lacks cmake"]);
    expect(ricProblems(mutate(dockerfile, " \\\n && chmod -R a+rX /opt/ric", ""))).toHaveLength(1);
    expect(ricProblems(mutate(dockerfile, "npm_config_nodedir=/usr/local npm ci", "npm ci"))).toHaveLength(1);
  });
});

describe("lambda/runtime (the runtime interface client's pinned install)", () => {
  it("pins aws-lambda-ric 4.x exactly, and its lock file agrees", () => {
    const manifest = JSON.parse(readFileSync(join(lambdaDir, "runtime", "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(lambdaDir, "runtime", "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; integrity?: string }>;
    };
    expect(manifest.dependencies["aws-lambda-ric"]).toMatch(/^4\.\d+\.\d+$/);
    expect(lock.packages["node_modules/aws-lambda-ric"]?.version).toBe(manifest.dependencies["aws-lambda-ric"]);
    expect(lock.packages["node_modules/aws-lambda-ric"]?.integrity).toMatch(/^sha512-/);
  });
});

describe("lambda/.dockerignore", () => {
  const ignored = readFileSync(join(lambdaDir, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));

  it("keeps installed dependencies and build output out of the build context", () => {
    expect(ignored).toContain("**/node_modules");
    expect(ignored).toContain("dist");
  });

  it("does not exclude anything the Dockerfile copies from the context", () => {
    const sources = stagesOf(dockerfile)
      .flatMap((s) => s.instructions)
      .filter((i) => i.getKeyword() === "COPY" && flag(i, "from") === undefined)
      .flatMap((i) => i.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--")).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "src", "runtime/package-lock.json", "lambda-entrypoint.sh"]));
    for (const source of sources) {
      expect(ignored.filter((pattern) => pattern === source || pattern === source.split("/")[0])).toEqual([]);
    }
  });
});

// The tools stage's source step, run as Docker runs a shell-form RUN (`/bin/sh -c`) against local git
// repositories standing in for the forge: its failures must name what failed and the setting to change.
describe("the tools stage's source step", () => {
  const step = runsOf(stagesOf(dockerfile).find((s) => s.name === "tools")!).find((r) => r.includes("git clone"))!;
  const git = (cwd: string, ...args: string[]) => {
    const r = spawnSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@localhost", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@localhost" } });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** A repository with one commit holding `files`, tagged `tag`; its commit id. */
  const repo = (dir: string, files: Record<string, string>, tag?: string): string => {
    mkdirSync(dir, { recursive: true });
    git(dir, "init", "-q");
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    git(dir, "add", "-A");
    git(dir, "commit", "-q", "-m", "sources");
    if (tag) git(dir, "tag", tag);
    return git(dir, "rev-parse", "HEAD");
  };
  const run = (work: string, args: Record<string, string>) =>
    spawnSync("/bin/sh", ["-c", step], { cwd: work, encoding: "utf8", env: { PATH: process.env.PATH ?? "", HOME: work, ...args } });

  function sources() {
    const root = mkdtempSync(join(tmpdir(), "knock-sources-"));
    const libgourou = join(root, "libgourou.git");
    const commit = repo(libgourou, { "include/libgourou.h": '#define LIBGOUROU_VERSION "0.8.9"\n' }, "v0.8.9");
    const updfparser = join(root, "uPDFParser.git");
    const updfCommit = repo(updfparser, { "Makefile": "all:\n" });
    const work = join(root, "src");
    mkdirSync(work);
    const args = { LIBGOUROU_REPO: libgourou, LIBGOUROU_REF: "v0.8.9", LIBGOUROU_COMMIT: commit.slice(0, 7), LIBGOUROU_VERSION: "0.8.9", UPDFPARSER_REPO: updfparser, UPDFPARSER_REF: updfCommit };
    return { root, work, args, commit };
  }

  it("checks out the pinned release from the repositories it is given, and prints the full commit id", () => {
    const { root, work, args, commit } = sources();
    try {
      const r = run(work, args);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`libgourou v0.8.9 is commit ${commit}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("names the URL, the build argument and the stack setting when a repository cannot be cloned", () => {
    const { root, work, args } = sources();
    try {
      const missing = join(root, "forge-is-down.git");
      const r = run(work, { ...args, LIBGOUROU_REPO: missing });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`error: could not clone libgourou from ${missing} (build argument LIBGOUROU_REPO). If that server is down, point the stack at a mirror: pulumi config set libgourou_repository <git URL>`);
      const r2 = run(mkdtempSync(join(root, "again-")), { ...args, UPDFPARSER_REPO: missing });
      expect(r2.status).not.toBe(0);
      expect(r2.stderr).toContain("pulumi config set updfparser_repository <git URL>");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("fails when the tag is not the pinned commit (a moved tag, or a mirror that differs)", () => {
    const { root, work, args, commit } = sources();
    try {
      const r = run(work, { ...args, LIBGOUROU_COMMIT: "324c566" });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`error: libgourou's v0.8.9 is commit ${commit}, not the pinned 324c566`);
      expect(run(mkdtempSync(join(root, "again-")), { ...args, LIBGOUROU_COMMIT: "abc" }).stderr).toContain("is not a commit id (at least 7 hex digits)");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
