// Pulumi.yaml as the Pulumi CLI reads it: the CLI checks the project's config declarations and the
// stack's values before the program runs, and a stack that fails those checks never deploys. These
// tests hold the CLI stand-in to the CLI's own test cases, then this repository's Pulumi.yaml to the
// CLI's rules and to config.ts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CONFIG_KEYS, loadConfig, type ConfigKeySpec, type ConfigSource } from "../config";
import {
  applyProjectConfig, loadProject, matchesType, repoProject, repoStackConfig, REPO_ROOT,
} from "./support/pulumi-cli-config";

const project = (config: string) => loadProject(`name: test\nruntime: nodejs\nconfig:\n${config}`);

describe("the CLI stand-in follows the CLI's own cases (pulumi/pulumi project_test.go, config.go)", () => {
  it("stops a stack that lacks a typed project key with no default, naming every such key", () => {
    const p = project("  instanceSize:\n    type: string\n  count:\n    type: integer\n  zone:\n    type: string");
    expect(() => applyProjectConfig(p, "dev", {})).toThrow("Stack 'dev' is missing configuration values 'count', 'instanceSize' and 'zone'");
    expect(() => applyProjectConfig(p, "dev", { "test:count": "1", "test:zone": "a" })).toThrow(
      "Stack 'dev' is missing configuration value 'instanceSize'",
    );
  });

  it("stops an untyped project key with no default as well", () => {
    expect(() => applyProjectConfig(project("  region:\n    description: where"), "dev", {})).toThrow("missing configuration value 'region'");
  });

  it("fills unset keys from defaults and values, and lets the stack override them", () => {
    const p = project("  instanceSize: t3.micro\n  createVpc:\n    type: boolean\n    default: true\n  aws:region: us-west-1");
    expect(applyProjectConfig(p, "dev", {})).toEqual({ "test:instanceSize": "t3.micro", "test:createVpc": "true", "aws:region": "us-west-1" });
    expect(applyProjectConfig(p, "dev", { "test:instanceSize": "42", "aws:region": "eu-west-1" })).toMatchObject({
      "test:instanceSize": "42", "aws:region": "eu-west-1",
    });
  });

  it("checks stack values against the declared type: integer takes 20, not hello", () => {
    const p = project("  size:\n    type: integer\n    default: 1");
    expect(applyProjectConfig(p, "dev", { "test:size": "20" })["test:size"]).toBe("20");
    expect(() => applyProjectConfig(p, "dev", { "test:size": "hello" })).toThrow("Stack 'dev' with configuration key 'size' must be of type 'integer'");
    expect(() => applyProjectConfig(p, "dev", { "test:size": "1.5" })).toThrow("must be of type 'integer'");
  });

  it("rejects a default that does not match its type", () => {
    expect(() => project("  size:\n    type: integer\n    default: hello")).toThrow(
      "The default value specified for configuration key 'size' is not of the expected type 'integer'",
    );
    expect(() => project("  on:\n    type: boolean\n    default: 3")).toThrow("not of the expected type 'boolean'");
  });

  it("refuses a type or a default on a key of another namespace, and wants its value", () => {
    expect(() => project("  aws:region:\n    type: string\n    value: us-west-1")).toThrow(
      "Configuration key 'aws:region' is not namespaced by the project and should not define a type",
    );
    expect(() => project("  aws:region:\n    default: us-west-1")).toThrow("should not define a default value");
    expect(() => project("  aws:region:\n    description: x")).toThrow("Configuration key 'aws:region' is namespaced and must provide an attribute 'value'");
  });

  it("refuses both a default and a value, and an array without items", () => {
    expect(() => project("  size:\n    type: string\n    default: a\n    value: b")).toThrow("cannot have both a 'default' and 'value' attribute");
    expect(() => project("  sizes:\n    type: array\n    default: [a]")).toThrow("does not specify the underlying type via the 'items' attribute");
  });

  it.each([
    ["integer", 20, true], ["integer", "20", true], ["integer", "-3", true], ["integer", "+3", true], ["integer", " 3", false],
    ["integer", "1e3", false], ["integer", 2.5, false], ["string", "", true], ["string", 3, false],
    ["boolean", "true", true], ["boolean", "yes", false], ["boolean", false, true],
  ])("ValidateConfigValue(%s, %j) is %s", (type, value, ok) => {
    expect(matchesType(type, undefined, value)).toBe(ok);
  });
});

describe("this repository's Pulumi.yaml under the CLI's rules", () => {
  it("loads: every declaration is one the CLI accepts", () => {
    expect(() => repoProject()).not.toThrow();
  });

  it("runs the dev stack (Pulumi.dev.yaml), and the program accepts what the CLI hands over", () => {
    const config = applyProjectConfig(repoProject(), "dev", repoStackConfig("dev"));
    expect(config["aws:region"]).toBe("us-east-2");
    expect(() => loadConfig(sourceOf(config), { project: "knock-lambda", stack: "dev" }, {})).not.toThrow();
  });

  it("runs a new, empty stack with every documented default", () => {
    const config = applyProjectConfig(repoProject(), "fresh", {});
    const loaded = loadConfig(sourceOf(config), { project: "knock-lambda", stack: "fresh" }, {});
    expect(loaded).toMatchObject({
      region: "us-east-2", lambdaTimeout: 900, lambdaMemory: 3008, lambdaLogRetention: 14, lambdaReservedConcurrency: undefined,
      codebuildComputeType: "BUILD_GENERAL1_MEDIUM", codebuildImage: "aws/codebuild/standard:7.0", functionUrlAuth: "AWS_IAM",
    });
  });

  it("accepts every value `pulumi config set` may store for an optional key, and the program reads it as set", () => {
    const config = applyProjectConfig(repoProject(), "dev", { "knock-lambda:lambda_reserved_concurrency": "5", "knock-lambda:codebuild_image": "my/image:1" });
    const loaded = loadConfig(sourceOf(config), { project: "knock-lambda", stack: "dev" }, {});
    expect(loaded.lambdaReservedConcurrency).toBe(5);
    expect(loaded.codebuildImage).toBe("my/image:1");
  });
});

describe("Pulumi.yaml and config.ts declare the same keys, defaults and ranges", () => {
  const declared = (parse(readFileSync(join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, Record<string, unknown>> }).config;
  const projectKeys = Object.keys(declared).filter((k) => !k.includes(":"));

  it("the same keys", () => {
    expect(projectKeys.sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  });

  it.each(Object.entries(CONFIG_KEYS) as [string, ConfigKeySpec][])("%s: same type and default, described with its range", (key, spec) => {
    const entry = declared[key];
    expect(entry.type).toBe(spec.type);
    expect(entry.default).toEqual(spec.default);
    const description = String(entry.description);
    if (spec.type === "integer" && !spec.values) expect(description).toContain(`(${spec.min}–${spec.max}`);
    for (const value of spec.values ?? []) expect(description).toContain(String(value));
    if (spec.type === "integer" && spec.unset !== undefined) expect(description).toContain(`${spec.unset} for none`);
  });

  it("no description claims a bare lower bound where the code has an upper one too", () => {
    for (const key of projectKeys) expect(String(declared[key].description)).not.toMatch(/≥|>=/);
  });
});

function sourceOf(config: Record<string, string>): ConfigSource {
  return (key) => config[key.includes(":") ? key : `knock-lambda:${key}`];
}
