// Physical names for every stack and project name Pulumi allows: valid by the AWS services' own
// rules, distinct for distinct (project, stack) pairs, and unchanged wherever the old names were
// already valid as they stood (a changed name replaces the repository, function or project).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  PROJECT_NAME, buildLogGroupName, buildProjectName, functionLogGroupName, functionName, repositoryName,
} from "../infra/naming";

// --- The rules, written out here from their sources so the test does not take them from the code ---

// pulumi/pulumi sdk/go/common/tokens/stack_name.go (ParseStackName): 1–100 of `[A-Za-z0-9_.-]`.
const PULUMI_STACK = /^[A-Za-z0-9_.-]{1,100}$/;
// pulumi/pulumi sdk/go/common/tokens/project.go (ValidateProjectName) + names.go (IsName).
const PULUMI_PROJECT = /^[A-Za-z_.][A-Za-z0-9_.-]{0,99}$/;
// Amazon ECR API Reference, CreateRepository, repositoryName: 2–256, this pattern, "must start with a letter".
const ECR_API_REFERENCE = /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
// The ECR service model (botocore ecr/2015-09-21/service-2.json, RepositoryName), a looser form.
const ECR_SERVICE_MODEL = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
// AWS Lambda API Reference, CreateFunction, FunctionName: a bare name is `[a-zA-Z0-9-_]+`, at most 64.
const LAMBDA_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
// AWS CodeBuild API Reference, CreateProject, name: 2–150 (service model codebuild/2016-10-06).
const CODEBUILD_NAME = /^[A-Za-z0-9][A-Za-z0-9\-_]{1,149}$/;
// Amazon CloudWatch Logs API Reference, CreateLogGroup, logGroupName: 1–512 of `[\.\-_/#A-Za-z0-9]`.
const LOG_GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;

function expectValidRepository(name: string): void {
  expect(name.length, name).toBeGreaterThanOrEqual(2);
  expect(name.length, name).toBeLessThanOrEqual(256);
  expect(name, "ECR API reference pattern").toMatch(ECR_API_REFERENCE);
  expect(name, "ECR service model pattern").toMatch(ECR_SERVICE_MODEL);
  expect(name, "ECR: must start with a letter").toMatch(/^[a-z]/);
}

function expectValidNames(project: string, stack: string): void {
  expectValidRepository(repositoryName(project, stack));
  const fn = functionName(project, stack);
  expect(fn).toMatch(LAMBDA_NAME);
  expect(functionLogGroupName(fn)).toMatch(LOG_GROUP_NAME);
  const build = buildProjectName(stack, project);
  expect(build).toMatch(CODEBUILD_NAME);
  expect(buildLogGroupName(build)).toMatch(LOG_GROUP_NAME);
}

/** The names as the program made them before this rule — the names deployed stacks have today. */
const previous = {
  repository: (project: string, stack: string) =>
    `${project}-${stack}`.toLowerCase().replace(/_/g, "-").replace(/[^a-z0-9._/-]/g, "-").slice(0, 256),
  build: (stack: string) => `knock-lambda-build-${stack}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 255),
  function: (project: string, stack: string) => `${project}-${stack}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64),
};

const hash8 = (project: string, stack: string) => createHash("sha256").update(`${project}/${stack}`).digest("hex").slice(0, 8);

const P = PROJECT_NAME;
const LONG_A = `${"s".repeat(99)}a`;
const LONG_B = `${"s".repeat(99)}b`;
const EDGE_STACKS = [
  "dev_", "x.", "my__stack", "a-_b", "prod.-x", "_lead", ".dot", "a", "1st", "-", "_", ".", "..", "-x-",
  LONG_A, LONG_B, "UPPER_Case", "upper-case", "a_b", "a-b", "x.y", "x-y", "Prod_EU", "Dev", "dev", "v1.2",
];

describe("the rules this test holds the names to", () => {
  it("takes edge cases that Pulumi itself accepts", () => {
    for (const stack of EDGE_STACKS) expect(stack).toMatch(PULUMI_STACK);
    expect(P).toMatch(PULUMI_PROJECT);
  });

  it("knows the project by the name Pulumi.yaml gives it", () => {
    const yaml = parse(readFileSync(join(__dirname, "..", "Pulumi.yaml"), "utf8")) as { name: string };
    expect(PROJECT_NAME).toBe(yaml.name);
  });

  it("would catch today's names: most edge cases break ECR's pattern, and pairs collide", () => {
    const broken = EDGE_STACKS.filter((stack) => !ECR_API_REFERENCE.test(previous.repository(P, stack)));
    expect(broken).toEqual(expect.arrayContaining(["dev_", "x.", "my__stack", "a-_b", "prod.-x", "_lead", ".dot"]));
    expect(previous.repository(P, "a_b")).toBe(previous.repository(P, "a-b"));
    expect(previous.repository(P, "UPPER_Case")).toBe(previous.repository(P, "upper-case"));
    expect(previous.function(P, "x.y")).toBe(previous.function(P, "x-y"));
    expect(previous.build("x.y")).toBe(previous.build("x-y"));
    expect(previous.function(P, LONG_A)).toBe(previous.function(P, LONG_B));
  });
});

describe("names that were valid as they stood", () => {
  it.each(["dev", "prod", "staging-2", "eu-west-1-blue", "a-b"])("keeps %s's names byte for byte", (stack) => {
    expect(repositoryName(P, stack)).toBe(previous.repository(P, stack));
    expect(buildProjectName(stack)).toBe(previous.build(stack));
    expect(buildProjectName(stack, P)).toBe(previous.build(stack));
    expect(functionName(P, stack)).toBe(previous.function(P, stack));
  });

  it("keeps the dev stack's names exactly as the program has always made them", () => {
    expect(repositoryName(P, "dev")).toBe("knock-lambda-dev");
    expect(buildProjectName("dev")).toBe("knock-lambda-build-dev");
    expect(functionName(P, "dev")).toBe("knock-lambda-dev");
  });

  it("keeps a function or project name that case or `_` made different only in the repository", () => {
    expect(functionName(P, "Prod_EU")).toBe("knock-lambda-Prod_EU");
    expect(buildProjectName("Prod_EU")).toBe("knock-lambda-build-Prod_EU");
    expect(repositoryName(P, "Prod_EU")).toBe(`knock-lambda-prod-eu-${hash8(P, "Prod_EU")}`);
  });

  it("keeps a valid `.` in the repository name, as before", () => {
    expect(repositoryName(P, "v1.2")).toBe("knock-lambda-v1.2");
  });
});

describe("edge-case stack names", () => {
  it.each(EDGE_STACKS)("gives %o names every service accepts", (stack) => {
    expectValidNames(P, stack);
  });

  it("appends `-` and 8 hex of SHA-256(<project>/<stack>) where the text had to change", () => {
    expect(repositoryName(P, "dev_")).toBe(`knock-lambda-dev-${hash8(P, "dev_")}`);
    expect(repositoryName(P, "prod.-x")).toBe(`knock-lambda-prod-x-${hash8(P, "prod.-x")}`);
    expect(repositoryName(P, "_lead")).toBe(`knock-lambda-lead-${hash8(P, "_lead")}`);
    expect(functionName(P, "x.y")).toBe(`knock-lambda-x-y-${hash8(P, "x.y")}`);
    expect(buildProjectName("x.")).toBe(`knock-lambda-build-x-${hash8(P, "x.")}`);
  });

  it("uses a stack name that ECR accepts as it is rather than rewriting it", () => {
    expect(repositoryName(P, "a_b")).toBe("knock-lambda-a_b");
    expect(repositoryName(P, "a-b")).toBe("knock-lambda-a-b");
  });

  it.each([
    ["UPPER_Case", "upper-case"], ["a_b", "a-b"], ["Dev", "dev"], ["dev_", "dev"], ["x.y", "x-y"], [LONG_A, LONG_B],
  ])("tells %s and %s apart in every name", (one, other) => {
    expect(repositoryName(P, one)).not.toBe(repositoryName(P, other));
    expect(functionName(P, one)).not.toBe(functionName(P, other));
    expect(buildProjectName(one)).not.toBe(buildProjectName(other));
  });

  it("cuts 100-character stack names to 64 for Lambda and keeps the end apart by the hash", () => {
    const [a, b] = [functionName(P, LONG_A), functionName(P, LONG_B)];
    expect(a).toHaveLength(64);
    expect(a.slice(0, 55)).toBe(b.slice(0, 55));
    expect(a.slice(-9)).toBe(`-${hash8(P, LONG_A)}`);
    expect(b.slice(-9)).toBe(`-${hash8(P, LONG_B)}`);
  });
});

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PULUMI_ALPHABET = `${LETTERS}0123456789_.-`;

function pick(next: () => number, from: string): string {
  return from[Math.floor(next() * from.length)];
}

/**
 * Stack names from Pulumi's alphabet, separators over-represented, plus for each a variant that
 * differs only in case or in one separator — the pairs sanitising merges, so only the hash can
 * separate them — and lengths up to Pulumi's 100.
 */
function generatedStacks(count: number): string[] {
  const next = random(20260115);
  const stacks = new Set<string>();
  while (stacks.size < count) {
    const length = next() < 0.2 ? 80 + Math.floor(next() * 21) : 1 + Math.floor(next() * 30);
    let name = "";
    for (let i = 0; i < length; i++) name += next() < 0.3 ? pick(next, "_.-") : pick(next, PULUMI_ALPHABET);
    stacks.add(name);
    const flipped = name.replace(/[a-z]/, (c) => c.toUpperCase());
    stacks.add(flipped);
    stacks.add(name.replace(/[_.-]/, (c) => (c === "-" ? "_" : "-")));
  }
  return [...stacks];
}

function generatedProjects(count: number): string[] {
  const next = random(15);
  const projects = new Set<string>(["knock", "knock-lambda-build-x", "Knock-Lambda", "_1", ".", "_"]);
  while (projects.size < count) {
    let name = pick(next, `${LETTERS}_.`);
    const length = next() < 0.2 ? 99 : Math.floor(next() * 20);
    for (let i = 0; i < length; i++) name += pick(next, PULUMI_ALPHABET);
    projects.add(name);
  }
  return [...projects];
}

function uniquePairs(pairs: Array<[string, string]>): Array<[string, string]> {
  return [...new Map(pairs.map((pair) => [`${pair[0]}/${pair[1]}`, pair])).values()];
}

describe("generated names", () => {
  const stacks = [...new Set([...generatedStacks(400), ...EDGE_STACKS])];
  const projects = generatedProjects(20);
  const pairs = uniquePairs([
    ...stacks.map((stack): [string, string] => [P, stack]),
    ...projects.flatMap((project) => [...EDGE_STACKS, ...stacks.slice(0, 20)].map((stack): [string, string] => [project, stack])),
    // Same `<project>-<stack>` text from two different pairs.
    ["knock", "lambda-dev"], [P, "dev"], ["knock-lambda-build-x", "dev"], [P, "x-build-dev"],
  ]);

  it("are names Pulumi allows", () => {
    for (const stack of stacks) expect(stack).toMatch(PULUMI_STACK);
    for (const project of projects) expect(project).toMatch(PULUMI_PROJECT);
    expect(stacks.length).toBeGreaterThan(400);
  });

  it("give names every service accepts", () => {
    for (const [project, stack] of pairs) expectValidNames(project, stack);
  });

  it.each([
    ["repository", (project: string, stack: string) => repositoryName(project, stack)],
    ["function", (project: string, stack: string) => functionName(project, stack)],
    ["CodeBuild project", (project: string, stack: string) => buildProjectName(stack, project)],
  ] as const)("give each (project, stack) pair its own %s name", (_kind, name) => {
    const seen = new Map<string, string>();
    for (const [project, stack] of pairs) {
      const made = name(project, stack);
      const pair = `${project}/${stack}`;
      expect(seen.get(made) ?? pair, `${made} for ${pair}`).toBe(pair);
      seen.set(made, pair);
    }
    expect(seen.size).toBe(pairs.length);
  });

  it("include many pairs that today's naming merges, so telling them apart rests on the new rule", () => {
    const oldRepos = new Set(stacks.map((stack) => previous.repository(P, stack)));
    const oldFunctions = new Set(stacks.map((stack) => previous.function(P, stack)));
    expect(oldRepos.size).toBeLessThan(stacks.length - 100);
    expect(oldFunctions.size).toBeLessThan(stacks.length - 20);
  });

  it("keep every name that was already valid as it stood, and change only the others", () => {
    let kept = 0;
    for (const stack of stacks) {
      const plain = `${P}-${stack}`;
      const oldRepo = previous.repository(P, stack);
      if (oldRepo === plain && ECR_API_REFERENCE.test(oldRepo)) { expect(repositoryName(P, stack)).toBe(oldRepo); kept++; }
      else expect(repositoryName(P, stack)).not.toBe(oldRepo);
      const oldFunction = previous.function(P, stack);
      if (oldFunction === plain) { expect(functionName(P, stack)).toBe(oldFunction); kept++; }
      else expect(functionName(P, stack)).not.toBe(oldFunction);
      const oldBuild = previous.build(stack);
      if (oldBuild === `${P}-build-${stack}`) { expect(buildProjectName(stack)).toBe(oldBuild); kept++; }
      else expect(buildProjectName(stack)).not.toBe(oldBuild);
    }
    expect(kept).toBeGreaterThan(100);
  });
});
