import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../config";
import { createConversionFunction } from "../infra/conversion-function";
import { PROJECT_ROOT, createImagePipeline } from "../infra/image-pipeline";
import { createStorage } from "../infra/storage";
import { installMocks, settled, type RecordedResource } from "./support/pulumi-mocks";

// The build trigger must follow the build context's content
// and nothing else. These tests evaluate the program repeatedly and compare what it registers.

let resources: RecordedResource[];
beforeAll(async () => { resources = await installMocks(); });

/** Registered inputs by logical name, with file assets replaced by the hash of the bytes they upload. */
async function snapshot(records: RecordedResource[]): Promise<Map<string, unknown>> {
  const normalize = async (value: unknown): Promise<unknown> => {
    if (Array.isArray(value)) return Promise.all(value.map(normalize));
    if (value && typeof value === "object") {
      const record = value as Record<string, unknown>;
      if (record.__pulumiAsset) {
        const file = await (record.path as Promise<string>);
        return `asset sha256:${createHash("sha256").update(fs.readFileSync(file)).digest("hex")}`;
      }
      const entries = await Promise.all(Object.entries(record).map(async ([k, v]) => [k, await normalize(v)] as const));
      return Object.fromEntries(entries);
    }
    return value;
  };
  return new Map(await Promise.all(records.map(async (r) => [r.name, await normalize(r.inputs)] as const)));
}

async function evaluate(run: () => Promise<unknown> | unknown): Promise<Map<string, unknown>> {
  const start = resources.length;
  await run();
  await settled(resources);
  return snapshot(resources.slice(start));
}

function changedBetween(a: Map<string, unknown>, b: Map<string, unknown>): string[] {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  return [...a.keys()].filter((name) => JSON.stringify(a.get(name)) !== JSON.stringify(b.get(name))).sort();
}

function walkFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.name === "node_modules") return [];
    return entry.isDirectory() ? walkFiles(full) : entry.isFile() ? [full] : [];
  });
}

describe("the program's build trigger", () => {
  const lambdaDir = path.join(PROJECT_ROOT, "lambda");
  const originalTimes = new Map<string, fs.Stats>();
  afterAll(() => {
    for (const [file, stat] of originalTimes) fs.utimesSync(file, stat.atime, stat.mtime);
  });

  it("registers identical resources and an identical trigger when only file mtimes change", async () => {
    const first = await evaluate(() => import("../index"));
    for (const file of walkFiles(lambdaDir)) {
      originalTimes.set(file, fs.statSync(file));
      const when = new Date(Date.UTC(2001, 0, 1) + Math.floor(Math.random() * 1e11));
      fs.utimesSync(file, when, when);
    }
    vi.resetModules();
    const second = await evaluate(() => import("../index"));

    expect(first.size).toBeGreaterThan(15);
    expect(changedBetween(first, second)).toEqual([]);
  });
});

describe("editing the build context", () => {
  let projectRoot: string;
  beforeAll(() => {
    projectRoot = fs.mkdtempSync(path.join(os.tmpdir(), "knock-trigger-"));
    fs.cpSync(path.join(PROJECT_ROOT, "lambda"), path.join(projectRoot, "lambda"), {
      recursive: true,
      filter: (source) => !/[\\/](node_modules|dist)([\\/]|$)/.test(path.relative(PROJECT_ROOT, source)),
    });
  });
  afterAll(() => fs.rmSync(projectRoot, { recursive: true, force: true }));

  const program = () => {
    const config = loadConfig();
    const storage = createStorage(config);
    const image = createImagePipeline(config, { sourceBucket: storage.sourceBucket, projectRoot });
    createConversionFunction(config, { imageUri: image.imageUri, outputBucket: storage.outputBucket, deviceBucket: storage.deviceBucket });
  };

  it("changes the trigger (and the uploaded archive) when one file under lambda/ changes, and nothing else", async () => {
    const before = await evaluate(program);
    const file = path.join(projectRoot, "lambda", "package.json");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8") + " ");
    const after = await evaluate(program);

    expect(changedBetween(before, after)).toEqual(["knock-lambda-build-run", "source-code"]);
    const triggers = (snap: Map<string, unknown>) => (snap.get("knock-lambda-build-run") as { triggers: string[] }).triggers;
    expect(triggers(after)[0]).not.toBe(triggers(before)[0]);
    // The second trigger is the buildspec's hash: unchanged, since only the context changed.
    expect(triggers(after)[1]).toBe(triggers(before)[1]);
  });

  it("does not re-run the build for changes outside the build context", async () => {
    const before = await evaluate(program);
    fs.mkdirSync(path.join(projectRoot, "lambda", "node_modules", "left-pad"), { recursive: true });
    fs.writeFileSync(path.join(projectRoot, "lambda", "node_modules", "left-pad", "index.js"), "module.exports = 1;\n");
    fs.writeFileSync(path.join(projectRoot, "README.md"), "# unrelated\n");
    const after = await evaluate(program);
    expect(changedBetween(before, after)).toEqual([]);
  });
});
