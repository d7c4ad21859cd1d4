#!/usr/bin/env node
// The `knock` command (package.json "bin"). It runs node_modules/.knock/knock.cjs, the bundle that
// `npm ci` builds (scripts/build-client.mjs), while that bundle matches the sources it was built
// from; otherwise (no bundle yet, or a source edited since) it runs the TypeScript sources through
// tsx, so an edit takes effect at once and a checkout installed with --ignore-scripts still works.
// `--debug` says which of the two ran and why.
/* global require, process, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS launcher by design */
"use strict";
const { readFileSync, statSync } = require("node:fs");
const nodeModule = require("node:module");
const { join } = require("node:path");

// __dirname is the checkout's own folder even when `npm link` put a symlink on PATH: Node resolves
// the main script's symlinks.
const root = join(__dirname, "..", "..");
const bundleDir = join(root, "node_modules", ".knock");
const argv = process.argv.slice(2);
const debug = argv.includes("--debug");

/**
 * The bundle's path when it is current, else why not. Current means every source recorded in
 * node_modules/.knock/inputs.json still has the mtime and size it had when the bundle was built:
 * one stat per source (~50 files: 1.5–4 ms on a busy 2-core machine, where hashing their 320 KB took
 * ~18 ms), since the point of the bundle is a fast start. Equal, not older: a source put back with an
 * older mtime counts as changed too.
 */
function currentBundle() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(bundleDir, "inputs.json"), "utf8"));
  } catch {
    return { reason: "no bundle has been built (node_modules/.knock/inputs.json is missing)" };
  }
  if (!Array.isArray(manifest.bundles) || !Array.isArray(manifest.inputs) || typeof manifest.main !== "string") {
    return { reason: "node_modules/.knock/inputs.json is not one this launcher reads" };
  }
  for (const [name, size] of manifest.bundles) {
    if (statSync(join(bundleDir, name), { throwIfNoEntry: false })?.size !== size) {
      return { reason: `node_modules/.knock/${name} is missing or is not the one inputs.json describes` };
    }
  }
  for (const [file, mtimeMs, size] of manifest.inputs) {
    const now = statSync(join(root, file), { throwIfNoEntry: false });
    if (!now) return { reason: `${file} is gone since the bundle was built` };
    if (now.mtimeMs !== mtimeMs || now.size !== size) return { reason: `${file} changed since the bundle was built` };
  }
  return { bundle: join(bundleDir, manifest.main) };
}

const found = currentBundle();
if (found.bundle) {
  if (debug) {
    // Stack traces then name client/*.ts lines; off otherwise, as reading the map costs time.
    if (nodeModule.setSourceMapsSupport) nodeModule.setSourceMapsSupport(true);
    else process.setSourceMapsEnabled(true);
    process.stderr.write(`knock: running ${found.bundle}\n`);
  }
  // Node keeps V8's compiled code for the bundle on disk ($NODE_COMPILE_CACHE, else the temp
  // folder), which saves most of its parse and compile time on later starts, as tsc does for itself.
  nodeModule.enableCompileCache?.();
  require(found.bundle).main(argv);
} else {
  if (debug) process.stderr.write(`knock: running the TypeScript sources: ${found.reason}. To rebuild: node ${join(root, "scripts", "build-client.mjs")}\n`);
  require("tsx/cjs");
  require("../main.ts").main(argv);
}
