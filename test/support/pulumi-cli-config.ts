// Stand-in for what the Pulumi CLI does with configuration before it starts the program, so that the
// stack tests see the configuration a real `pulumi up` would hand over — and fail where the real CLI
// would stop. It follows pulumi/pulumi's `sdk/go/common/workspace`:
//   - project.go, `RewriteShorthandConfigValues`: `key: scalar` is a default for a project key and a
//     value for a key of another namespace;
//   - project.go, `Project.Validate`: no key has both `default` and `value`; a typed array names its
//     `items`; a project key's default matches its type; a key of another namespace (`aws:region`)
//     has no `type`, no `default`, and must have a `value`;
//   - project.go, `ValidateConfigValue`: `string` takes a string; `integer` an int, a whole float or
//     a string `strconv.Atoi` accepts; `boolean` a bool or the strings "true"/"false";
//   - config.go, `mergeConfig` (called by `ValidateStackConfigAndApplyProjectConfig`): a project key
//     with neither default nor value that the stack does not set is reported as
//     `Stack '<stack>' is missing configuration value(s) …` (all of them, sorted, in one error); a
//     default or value fills a key the stack does not set; then every stack value of a typed key must
//     match the type: `Stack '<stack>' with configuration key '<key>' must be of type '<type>'`.
// The messages are the CLI's own, so the tests can hold this file to the cases of its project_test.go.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

/** One entry of a project's `config:` block after the shorthand rewrite. */
export interface ProjectConfigType {
  readonly type?: string;
  readonly items?: { readonly type: string };
  readonly description?: string;
  readonly default?: unknown;
  readonly value?: unknown;
  readonly secret?: boolean;
}

/** The parts of a Pulumi.yaml the CLI's config handling reads. */
export interface Project {
  readonly name: string;
  readonly config: Readonly<Record<string, ProjectConfigType>>;
}

/** Parses a Pulumi.yaml text and validates its `config:` block the way the CLI does on load. */
export function loadProject(yamlText: string): Project {
  const raw = parse(yamlText) as { name?: unknown; config?: unknown };
  if (typeof raw?.name !== "string" || raw.name === "") throw new Error("project is missing a non-empty string 'name' attribute");
  const name = raw.name;
  const config: Record<string, ProjectConfigType> = {};
  const block = raw.config && typeof raw.config === "object" ? (raw.config as Record<string, unknown>) : {};
  for (const [key, entry] of Object.entries(block)) {
    // RewriteShorthandConfigValues rewrites strings, ints, bools and arrays; anything else (a map,
    // or a bare `key:`) is read as the full form.
    const isShorthand = ["string", "boolean"].includes(typeof entry) || Number.isInteger(entry) || Array.isArray(entry);
    config[key] = isShorthand
      ? namespacedByProject(name, key) ? { default: entry } : { value: entry }
      : ((entry ?? {}) as ProjectConfigType);
  }
  validateProject({ name, config });
  return { name, config };
}

function namespacedByProject(projectName: string, key: string): boolean {
  return !key.includes(":") || key.startsWith(`${projectName}:`);
}

function validateProject(project: Project): void {
  for (const [key, type] of Object.entries(project.config)) {
    if (type.default !== undefined && type.value !== undefined) {
      throw new Error(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
    }
    if (namespacedByProject(project.name, key)) {
      if (type.type === "array" && type.items === undefined) {
        throw new Error(`The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`);
      }
      if (type.type !== undefined && type.default !== undefined && !matchesType(type.type, type.items, type.default)) {
        throw new Error(`The default value specified for configuration key '${key}' is not of the expected type '${fullTypeName(type)}'`);
      }
    } else {
      if (type.type !== undefined) throw new Error(`Configuration key '${key}' is not namespaced by the project and should not define a type`);
      if (type.default !== undefined) {
        throw new Error(`Configuration key '${key}' is not namespaced by the project and should not define a default value. Did you mean to use the 'value' attribute instead of 'default'?`);
      }
      if (type.value === undefined) throw new Error(`Configuration key '${key}' is namespaced and must provide an attribute 'value'`);
    }
  }
}

function fullTypeName(type: ProjectConfigType): string {
  return type.items ? `array<${type.items.type}>` : (type.type ?? "");
}

/** Go's strconv.Atoi: an optional sign and decimal digits, nothing else (no spaces, no "1e3"). */
function atoiAccepts(text: string): boolean {
  return /^[+-]?\d+$/.test(text) && Number.isSafeInteger(Number(text));
}

/** project.go `ValidateConfigValue`. */
export function matchesType(typeName: string, items: { readonly type: string } | undefined, value: unknown): boolean {
  switch (typeName) {
    case "string":
      return typeof value === "string";
    case "integer":
      if (typeof value === "number") return Number.isInteger(value);
      return typeof value === "string" && atoiAccepts(value);
    case "boolean":
      return typeof value === "boolean" || value === "true" || value === "false";
    case "object":
      return value !== null && typeof value === "object" && !Array.isArray(value);
    default:
      return Array.isArray(value) && items !== undefined && value.every((item) => matchesType(items.type, undefined, item));
  }
}

/** A stack settings file's `config:` block, keys fully qualified (`knock-lambda:lambda_memory`). */
export type StackConfig = Readonly<Record<string, unknown>>;

/** Parses a Pulumi.<stack>.yaml text into its config block. */
export function loadStackConfig(yamlText: string): StackConfig {
  const raw = parse(yamlText) as { config?: Record<string, unknown> } | null;
  return { ...(raw?.config ?? {}) };
}

function qualify(projectName: string, key: string): string {
  return key.includes(":") ? key : `${projectName}:${key}`;
}

/**
 * `mergeConfig` with validation on: returns the configuration the program receives (fully qualified
 * keys, values as the text the program reads), or throws the CLI's error.
 */
export function applyProjectConfig(project: Project, stackName: string, stack: StackConfig): Record<string, string> {
  const merged: Record<string, unknown> = { ...stack };
  const missing: string[] = [];
  for (const key of Object.keys(project.config).sort()) {
    const type = project.config[key];
    const fullKey = qualify(project.name, key);
    if (fullKey in merged) continue;
    if (type.value === undefined && type.default === undefined) {
      if (namespacedByProject(project.name, key)) missing.push(key);
      continue;
    }
    merged[fullKey] = type.default ?? type.value;
  }
  if (missing.length === 1) throw new Error(`Stack '${stackName}' is missing configuration value '${missing[0]}'`);
  if (missing.length > 1) {
    const listed = missing.map((k) => `'${k}'`);
    throw new Error(`Stack '${stackName}' is missing configuration values ${listed.slice(0, -1).join(", ")} and ${listed[listed.length - 1]}`);
  }
  for (const key of Object.keys(project.config).sort()) {
    const type = project.config[key];
    const fullKey = qualify(project.name, key);
    // Stack values arrive as text (config.Value); only explicitly typed keys are checked.
    if (type.type === undefined || !(fullKey in stack)) continue;
    const value = stack[fullKey];
    if (!matchesType(type.type, type.items, typeof value === "object" ? value : String(value))) {
      throw new Error(`Stack '${stackName}' with configuration key '${key}' must be of type '${fullTypeName(type)}'`);
    }
  }
  return Object.fromEntries(
    Object.entries(merged).map(([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)]),
  );
}

/** This repository's Pulumi.yaml, and a stack file of it when one exists. */
export const REPO_ROOT = join(__dirname, "..", "..");

export function repoProject(): Project {
  return loadProject(readFileSync(join(REPO_ROOT, "Pulumi.yaml"), "utf8"));
}

export function repoStackConfig(stackName: string): StackConfig {
  try {
    return loadStackConfig(readFileSync(join(REPO_ROOT, `Pulumi.${stackName}.yaml`), "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
}
