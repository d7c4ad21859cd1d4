// CodeBuild pulls anonymously from shared AWS addresses, so any image that comes from Docker Hub can
// fail the build with `toomanyrequests` (Docker Hub's anonymous pull limit). These tests hold every
// image reference the build uses — the BuildKit daemon the buildspec starts and everything the
// Dockerfile pulls — to "names a registry that is not Docker Hub", and feed Docker Hub references to
// the same checks to show that they fail.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DockerfileParser } from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { BUILDKIT_FALLBACK_IMAGE, BUILDKIT_IMAGE, createBuildspec, type Buildspec } from "../../infra/buildspec";

const DOCKERFILE = readFileSync(join(__dirname, "..", "..", "lambda", "Dockerfile"), "utf8");

/** Hosts that are Docker Hub: its canonical name, its legacy "index" name and its registry's real host. */
const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/**
 * The registry host an image reference is pulled from, by Docker's own normalization rule
 * (github.com/distribution/reference, normalize.go, `splitDockerDomain`): the part before the first
 * `/` is a registry host only if it is `localhost`, contains a `.` or a `:`, or has an uppercase
 * letter; otherwise — and always for a name without `/`, such as `node:22` — the reference is on
 * Docker Hub (`docker.io`, with `library/` prepended for one-part names). `index.docker.io` is
 * rewritten to `docker.io` there too.
 */
function registryHost(reference: string): string {
  const slash = reference.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = reference.slice(0, slash);
  const isHost = first === "localhost" || /[.:]/.test(first) || first !== first.toLowerCase();
  if (!isHost) return "docker.io";
  // Host names are case-insensitive: `Docker.io/...` still reaches Docker Hub.
  const host = first.toLowerCase();
  return host === "index.docker.io" ? "docker.io" : host;
}

/** One problem per reference that would be pulled from Docker Hub, naming where it was found. */
function dockerHubProblems(references: readonly { ref: string; where: string }[]): string[] {
  return references
    .filter(({ ref }) => DOCKER_HUB_HOSTS.has(registryHost(ref)))
    .map(({ ref, where }) => `${where}: ${ref} resolves to Docker Hub (${registryHost(ref)})`);
}

// ---- the buildspec ----------------------------------------------------------------------------

/** buildx's image for a docker-container builder given no `image=` driver option (docker/buildx driver/bkimage). */
const BUILDX_DEFAULT_BUILDKIT_IMAGE = "moby/buildkit:buildx-stable-1";

/** Splits a shell command into words, honouring single and double quotes (enough for the buildspec). */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** Value of a long option given as `--name value` or `--name=value`, for every occurrence. */
function optionValues(argv: readonly string[], name: string): string[] {
  const values: string[] = [];
  argv.forEach((word, i) => {
    if (word === name && i + 1 < argv.length) values.push(argv[i + 1]);
    else if (word.startsWith(`${name}=`)) values.push(word.slice(name.length + 1));
  });
  return values;
}

/**
 * Image references in the buildspec's commands: the BuildKit image of every `docker buildx create`
 * (its `--driver-opt image=`, or buildx's Docker Hub default when a docker-container builder names
 * none), images named by `docker pull`/`docker run`, and `--cache-from` registry refs (a cache import
 * is a pull). `$ECR_REPOSITORY_URI` is replaced by a repository URI of the shape CodeBuild gets.
 */
function buildspecImageReferences(spec: Buildspec): { ref: string; where: string }[] {
  const repositoryUri = "123456789012.dkr.ecr.us-east-2.amazonaws.com/knock-lambda-dev";
  const refs: { ref: string; where: string }[] = [];
  const commands = [...spec.phases.pre_build.commands, ...spec.phases.build.commands];
  // CodeBuild exports the buildspec's env.variables to every command; the project adds ECR_REPOSITORY_URI.
  const known = new Map<string, string[]>([...Object.entries(spec.env.variables).map(([k, v]) => [k, [v]] as [string, string[]]), ["ECR_REPOSITORY_URI", [repositoryUri]]]);
  const expand = (text: string, vars: ReadonlyMap<string, string[]>): string[] => {
    const match = /\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/.exec(text);
    if (!match || !vars.has(match[1])) return [text];
    return vars.get(match[1])!.flatMap((value) => expand(text.replace(match[0], value), vars));
  };
  for (const command of commands) {
    // A shell variable assigned in the command (e.g. the BuildKit image chosen between a pin and a
    // fallback) may hold any of the values assigned to it: each one is a reference.
    const vars = new Map(known);
    for (const [, name, value] of command.matchAll(/(?:^|[\s;])([A-Za-z_][A-Za-z0-9_]*)="?([^";\s]+)"?/g)) {
      vars.set(name, [...(vars.get(name) === known.get(name) ? [] : vars.get(name) ?? []), ...expand(value, known)]);
    }
    const where = `buildspec: ${command.slice(0, 60)}`;
    // Every simple command of the line: `if`/`then`/`else` lists, `;`, `&&` and `||` separate them.
    for (const simple of command.split(/;|&&|\|\||\|/).map((part) => part.trim().replace(/^(if|then|else|fi|do|done)\s+/, ""))) {
      // One argument list per combination of the values the variables may hold.
      const variants = words(simple).reduce<string[][]>((lists, word) => lists.flatMap((list) => expand(word, vars).map((value) => [...list, value])), [[]]);
      for (const argv of variants) refs.push(...dockerReferences(argv, where));
    }
  }
  return refs.filter((r, i) => refs.findIndex((o) => o.ref === r.ref && o.where === r.where) === i);
}

/** The image references one `docker …` argument list pulls. */
function dockerReferences(argv: readonly string[], where: string): { ref: string; where: string }[] {
  const refs: { ref: string; where: string }[] = [];
  const docker = argv.indexOf("docker");
  if (docker < 0) return refs;
  const [sub, subsub] = argv.slice(docker + 1);
  if (sub === "buildx" && subsub === "create") {
    const driver = optionValues(argv, "--driver")[0] ?? "docker-container";
    const images = optionValues(argv, "--driver-opt")
      .flatMap((opts) => opts.split(","))
      .filter((opt) => opt.startsWith("image="))
      .map((opt) => opt.slice("image=".length));
    if (images.length === 0 && driver === "docker-container") refs.push({ ref: BUILDX_DEFAULT_BUILDKIT_IMAGE, where: `${where} (buildx default)` });
    for (const ref of images) refs.push({ ref, where: `${where} (buildx create)` });
  }
  if (sub === "pull" || sub === "run") {
    // The first word after the subcommand's options is the image (options here take no separate value).
    const image = argv.slice(docker + 2).find((w) => !w.startsWith("-"));
    if (image) refs.push({ ref: image, where });
  }
  for (const cache of optionValues(argv, "--cache-from")) {
    const ref = cache.split(",").find((part) => part.startsWith("ref="));
    if (ref) refs.push({ ref: ref.slice("ref=".length), where: `${where} (buildx build)` });
  }
  return refs;
}

// ---- the Dockerfile ---------------------------------------------------------------------------

/** Replaces `$NAME`/`${NAME}` with the default of a global ARG (declared before the first FROM). */
function expandArgs(text: string, defaults: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name: string) => defaults.get(name) ?? whole);
}

/**
 * Image references the Dockerfile pulls: every FROM that is not an earlier stage or `scratch`,
 * `COPY --from=` and `RUN --mount=...,from=` naming an image rather than a stage, and the frontend
 * image of a `# syntax=` parser directive (BuildKit pulls it before reading the rest of the file).
 */
function dockerfileImageReferences(text: string): { ref: string; where: string }[] {
  const dockerfile = DockerfileParser.parse(text);
  const defaults = new Map<string, string>();
  for (const arg of dockerfile.getInitialARGs()) {
    const property = arg.getProperty();
    if (property?.getValue()) defaults.set(property.getName(), property.getValue()!);
  }
  const refs: { ref: string; where: string }[] = [];
  for (const directive of dockerfile.getDirectives()) {
    if (directive.getName().toLowerCase() === "syntax") refs.push({ ref: directive.getValue(), where: "Dockerfile # syntax directive" });
  }
  const stages = new Set<string>();
  const isStage = (name: string) => stages.has(name.toLowerCase()) || /^\d+$/.test(name);
  for (const instruction of dockerfile.getInstructions()) {
    const line = instruction.getRange().start.line + 1;
    const keyword = instruction.getKeyword();
    if (keyword === "FROM") {
      const args = instruction.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith("--"));
      const image = expandArgs(args[0] ?? "", defaults);
      if (image !== "scratch" && !isStage(image)) refs.push({ ref: image, where: `Dockerfile line ${line} FROM` });
      const asIndex = args.findIndex((a) => a.toUpperCase() === "AS");
      if (asIndex >= 0 && args[asIndex + 1]) stages.add(args[asIndex + 1].toLowerCase());
    } else if (keyword === "COPY" || keyword === "RUN") {
      // dockerfile-ast keeps an instruction's --flags apart from its arguments.
      const flags = (instruction as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags();
      for (const flag of flags) {
        const value = flag.getValue() ?? "";
        const from =
          flag.getName() === "from" ? value
          : flag.getName() === "mount" ? value.split(",").find((p) => p.startsWith("from="))?.slice("from=".length)
          : undefined;
        if (from !== undefined && !isStage(expandArgs(from, defaults))) {
          refs.push({ ref: expandArgs(from, defaults), where: `Dockerfile line ${line} ${keyword} --${flag.getName()}` });
        }
      }
    }
  }
  return refs;
}

// ---- the tests --------------------------------------------------------------------------------

describe("Docker's image reference rule", () => {
  it.each([
    ["node:22", "docker.io"],
    ["moby/buildkit:buildx-stable-1", "docker.io"],
    ["library/debian@sha256:" + "a".repeat(64), "docker.io"],
    ["docker.io/library/node:22", "docker.io"],
    ["index.docker.io/moby/buildkit", "docker.io"],
    ["registry-1.docker.io/library/node:22", "registry-1.docker.io"],
    ["Docker.IO/library/node", "docker.io"],
    ["localhost/knock:dev", "localhost"],
    ["registry:5000/knock", "registry:5000"],
    ["public.ecr.aws/vend/moby/buildkit:v0.33.0", "public.ecr.aws"],
    ["public.ecr.aws/docker/library/node:22-bookworm-slim", "public.ecr.aws"],
  ])("resolves %s to the registry %s", (reference, host) => {
    expect(registryHost(reference)).toBe(host);
  });

  it("flags unqualified names and every Docker Hub host, and nothing else", () => {
    const problems = dockerHubProblems([
      { ref: "node:22", where: "a" },
      { ref: "moby/buildkit", where: "b" },
      { ref: "docker.io/moby/buildkit:v0.33.0", where: "c" },
      { ref: "index.docker.io/library/debian", where: "d" },
      { ref: "registry-1.docker.io/library/debian", where: "e" },
      { ref: "public.ecr.aws/vend/moby/buildkit:v0.33.0", where: "f" },
      { ref: "ghcr.io/moby/buildkit:v0.33.0", where: "g" },
    ]);
    expect(problems.map((p) => p.split(":")[0])).toEqual(["a", "b", "c", "d", "e"]);
  });
});

describe("the buildspec pulls nothing from Docker Hub", () => {
  it.each(["x86_64", "arm64"] as const)("starts BuildKit from a non-Docker-Hub registry (%s)", (architecture) => {
    const refs = buildspecImageReferences(createBuildspec(architecture));
    // The builder's image and the registry cache are the references this buildspec has today.
    expect(refs.some((r) => r.where.includes("buildx create"))).toBe(true);
    expect(refs.some((r) => r.where.includes("buildx build"))).toBe(true);
    // Both BuildKit images the build may start — the pin and its fallback — are seen and checked.
    const builders = refs.filter((r) => r.where.endsWith("(buildx create)")).map((r) => r.ref).sort();
    expect(builders).toEqual([BUILDKIT_FALLBACK_IMAGE, BUILDKIT_IMAGE].sort());
    expect(dockerHubProblems(refs)).toEqual([]);
  });

  it("counts a docker-container builder without an image option as Docker Hub (buildx's default)", () => {
    const spec = createBuildspec("x86_64");
    const broken: Buildspec = {
      ...spec,
      phases: {
        ...spec.phases,
        pre_build: {
          ...spec.phases.pre_build,
          commands: spec.phases.pre_build.commands.map((c) => c.replace(/ --driver-opt "?image=[^"\s]+"?/, "")),
        },
      },
    };
    expect(dockerHubProblems(buildspecImageReferences(broken))).toEqual([
      expect.stringContaining(`${BUILDX_DEFAULT_BUILDKIT_IMAGE} resolves to Docker Hub`),
    ]);
  });

  it("flags a Docker Hub image named in a driver option, a pull or a cache import", () => {
    const spec = createBuildspec("arm64");
    const broken: Buildspec = {
      ...spec,
      phases: {
        ...spec.phases,
        pre_build: {
          ...spec.phases.pre_build,
          commands: [
            "docker buildx create --name b --driver docker-container --driver-opt network=host,image=moby/buildkit:v0.33.0 --use",
            "docker pull --quiet node:22",
          ],
        },
        build: { ...spec.phases.build, commands: ['docker buildx build --cache-from "type=registry,ref=someone/cache:main" lambda'] },
      },
    };
    expect(dockerHubProblems(buildspecImageReferences(broken))).toHaveLength(3);
  });
});

describe("the Dockerfile pulls nothing from Docker Hub", () => {
  it("names a non-Docker-Hub registry in every FROM", () => {
    const refs = dockerfileImageReferences(DOCKERFILE);
    // Three external FROMs at least (tools, handler, ric, runtime; stages reused by name are skipped).
    expect(refs.filter((r) => r.where.endsWith("FROM")).length).toBeGreaterThanOrEqual(3);
    expect(dockerHubProblems(refs)).toEqual([]);
  });

  it("flags Docker Hub base images, COPY --from images, mounts and a # syntax frontend in a modified copy", () => {
    const modified = [
      "# syntax=docker/dockerfile:1",
      "ARG BASE=node:22-bookworm-slim",
      "FROM public.ecr.aws/docker/library/debian:bookworm-slim AS tools",
      "FROM ${BASE} AS handler",
      "COPY --from=tools /opt /opt",
      "COPY --from=busybox:1.36 /bin/busybox /bin/busybox",
      "RUN --mount=type=bind,from=alpine:3.20,target=/mnt true",
      "FROM handler",
      "FROM docker.io/library/node:22",
    ].join("\n");
    const problems = dockerHubProblems(dockerfileImageReferences(modified));
    expect(problems).toEqual([
      expect.stringContaining("docker/dockerfile:1"),
      expect.stringContaining("node:22-bookworm-slim"),
      expect.stringContaining("busybox:1.36"),
      expect.stringContaining("alpine:3.20"),
      expect.stringContaining("docker.io/library/node:22"),
    ]);
  });
});
