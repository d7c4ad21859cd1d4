#!/usr/bin/env node
// Bundles the `knock` client (client/ and the handler it runs for `knock serve`, lambda/src/) so
// that `knock` starts without transpiling TypeScript on every run (through tsx, `knock --help` took
// ~16× as long as bare Node). Run by `npm ci`/`npm install` (the root postinstall) and by `npm test`
// (pretest), or by hand after editing the client:
//
//   node scripts/build-client.mjs
//
// It writes, in node_modules/.knock/:
//   knock.cjs    the client's own code and the packages every start needs (~0.3 MB);
//   vendor.cjs   every other package it imports (the AWS SDK, QR codes, progress bars, the XML
//                parser: ~3 MB), read only when a command first uses one of them — so `knock --help`
//                and `knock health` against `knock serve` never parse it;
//   inputs.json  every project source both were built from, with its mtime and size, which
//                client/bin/knock.js compares on each start (one stat per source, ~50 files, a few
//                ms); when any differs it runs the TypeScript sources through tsx instead.
//
// Why node_modules/: what is built from the installed packages lives and dies with them (`npm ci`
// starts by removing the folder, then this script refills it; Prisma keeps its generated client in
// node_modules/.prisma the same way), and every tool already skips it — eslint, vitest, git, editors'
// search — so 3 MB of bundled packages are never linted or searched. Two folders below the project
// root, as client/lib/service-address.ts needs: it finds the project (Pulumi.yaml) at
// `__dirname/../..`, which holds for client/lib/*.ts and for node_modules/.knock/knock.cjs alike.
/* global console, process */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(root, "node_modules", ".knock");
const MAIN = "knock.cjs";
const VENDOR = "vendor.cjs";
const MANIFEST = "inputs.json";
const VENDOR_ENTRY = "vendor-entry.js"; // not a file: built from the list of vendored packages

/**
 * Packages bundled into knock.cjs, because every start uses them while its modules load: commander
 * builds the program, and lambda/src/address-policy.ts parses its address table with ipaddr.js at
 * load. Any other package in knock.cjs would be parsed on every start for nothing; a package left out
 * of this list that is used at load only makes the start slower (vendor.cjs is then read at once).
 */
const AT_START = new Set(["commander", "ipaddr.js"]);

// esbuild comes from tsx (a dependency, and the loader the bin falls back to), so bundling adds no
// dependency and is done by the same esbuild release that runs the sources otherwise.
const requireFromRoot = createRequire(join(root, "package.json"));
const esbuild = createRequire(requireFromRoot.resolve("tsx/package.json"))("esbuild");

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node22.12",
  format: "cjs",
  // A map for `knock --debug` (the bin turns source maps on only then, as reading one costs time);
  // without sourcesContent, since the sources are beside it in the checkout.
  sourcemap: "linked",
  sourcesContent: false,
  metafile: true,
  write: false,
  logLevel: "warning",
};

/** A project source (not a package): what the staleness check in the bin watches. */
function isProjectSource(file) {
  return !file.split(sep).includes("node_modules") && !relative(root, file).startsWith("..");
}

/** Whether `name` occurs in `source` as a whole identifier (export names hold only [\w$]). */
function mentions(source, name) {
  return new RegExp(`(?<![\\w$])${name.replaceAll("$", "\\$")}(?![\\w$])`).test(source);
}

/** A package's name from an import path: "@aws-sdk/client-s3/x" → "@aws-sdk/client-s3". */
function packageName(path) {
  const parts = path.split("/");
  return path.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * Replaces each import of a package (other than those in AT_START) from a project source with a
 * module whose exports are getters that load the package from vendor.cjs on first access. esbuild's
 * CommonJS interop reads exports through getters, so `import { S3Client } from "@aws-sdk/client-s3"`
 * works unchanged. The export names are read by loading the package here, at build time, and kept
 * only where the importing file mentions them (`S3Client`, or `toString` in `QRCode.toString`):
 * the S3 client alone exports ~700 names, and defining them all took tens of milliseconds per start. A name
 * reached only by a computed key (`mod[name]`) would be missed; no source does that. A package whose
 * exports are not a plain object (a function or a class) stays in knock.cjs. `vendored` maps each
 * vendored file (relative to the root) to its absolute path, for the second build.
 */
function lazyPackages(vendored) {
  return {
    name: "lazy-packages",
    setup(build) {
      build.onResolve({ filter: /^\.\/vendor\.cjs$/, namespace: "lazy" }, (args) => ({ path: args.path, external: true }));
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData?.real || args.kind !== "import-statement" || args.path.startsWith("node:") || !isProjectSource(args.importer)) return undefined;
        if (AT_START.has(packageName(args.path))) return undefined;
        const real = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { real: true } });
        if (real.errors.length > 0 || real.external || !real.path) return real;
        const exported = createRequire(args.importer)(real.path);
        if (exported === null || typeof exported !== "object" || Object.getPrototypeOf(exported) !== Object.prototype) return real;
        const key = relative(root, real.path).split(sep).join("/");
        vendored.set(key, real.path);
        const source = readFileSync(args.importer, "utf8");
        const names = Object.keys(exported).filter((name) => name === "default" || mentions(source, name));
        // One such module per importing file, as each keeps the names its importer mentions.
        const path = `${key}?from=${relative(root, args.importer).split(sep).join("/")}`;
        return { path, namespace: "lazy", pluginData: { key, names, esModule: exported.__esModule === true } };
      });
      build.onLoad({ filter: /.*/, namespace: "lazy" }, (args) => {
        const { key, names, esModule } = args.pluginData;
        const lines = [`let real;`, `const load = () => (real ??= require("./vendor.cjs")[${JSON.stringify(key)}]);`];
        if (esModule) lines.push(`Object.defineProperty(exports, "__esModule", { value: true });`);
        for (const name of names) lines.push(`Object.defineProperty(exports, ${JSON.stringify(name)}, { enumerable: true, get: () => load()[${JSON.stringify(name)}] });`);
        return { contents: lines.join("\n") + "\n", loader: "js" };
      });
    },
  };
}

/** vendor.cjs's entry: one getter per vendored package, so loading the file evaluates none of them. */
function vendorEntry(vendored) {
  const lines = [...vendored].map(
    ([key, file]) => `Object.defineProperty(exports, ${JSON.stringify(key)}, { enumerable: true, get: () => require(${JSON.stringify(file)}) });`,
  );
  return { contents: lines.join("\n") + "\n", resolveDir: root, sourcefile: VENDOR_ENTRY, loader: "js" };
}

/** Stats taken after the build; a source changed while it ran is recorded as unknown (so, stale). */
function inputStats(metafiles, startedMs) {
  const paths = new Set(metafiles.flatMap((m) => Object.keys(m.inputs)));
  return [...paths]
    .filter((p) => !p.startsWith("lazy:") && p !== VENDOR_ENTRY) // generated here, not files
    .map((p) => resolve(root, p))
    .filter(isProjectSource)
    .sort()
    .map((file) => {
      const s = statSync(file);
      return [relative(root, file).split(sep).join("/"), s.mtimeMs >= startedMs ? 0 : s.mtimeMs, s.size];
    });
}

/** Writes to a temporary name and renames, so a `knock` starting meanwhile sees the old or the new file. */
function writeAtomically(file, contents) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

async function main() {
  const startedMs = Date.now();
  const vendored = new Map();
  const app = await esbuild.build({ ...common, entryPoints: ["client/main.ts"], outfile: join(outDir, MAIN), plugins: [lazyPackages(vendored)] });
  const vendor = await esbuild.build({ ...common, stdin: vendorEntry(vendored), outfile: join(outDir, VENDOR) });
  const outputs = [...app.outputFiles, ...vendor.outputFiles];
  mkdirSync(outDir, { recursive: true });
  for (const file of outputs) writeAtomically(file.path, file.contents);
  const inputs = inputStats([app.metafile, vendor.metafile], startedMs);
  // The manifest goes last: with the old manifest the new files' sizes or sources do not match, so a
  // `knock` started in between runs the sources, never a bundle it cannot vouch for.
  const bundles = outputs.filter((f) => f.path.endsWith(".cjs")).map((f) => [relative(outDir, f.path), f.contents.length]);
  writeAtomically(join(outDir, MANIFEST), JSON.stringify({ main: MAIN, bundles, inputs }) + "\n");
  const sizes = bundles.map(([name, size]) => `${name} ${(size / 1024 / 1024).toFixed(1)} MiB`).join(", ");
  console.log(`built the knock client: node_modules/.knock/ ${sizes}, from ${inputs.length} sources, in ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  // esbuild has already printed each error with its file and line. Without a manifest the bin
  // runs the sources, as it would with a stale bundle.
  rmSync(join(outDir, MANIFEST), { force: true });
  const cause = (err instanceof Error ? err.message : String(err)).split("\n")[0].replace(/:$/, "");
  console.error(`build-client: could not bundle the knock client (${cause}); knock runs its TypeScript sources until it is rebuilt.`);
  console.error("Fix the error above (npx tsc --noEmit -p tsconfig.json shows it too), then run: node scripts/build-client.mjs");
  process.exit(1);
});
