// scripts/check-node.cjs, the pretest/preinstall check: on a Node older than package.json's engines,
// `npm test` and `npm install` stop at once with one line naming both versions and the fix. The
// script reads engines from the package.json beside its folder, so each test runs it from a scratch
// copy whose engines sit just above or below the Node running the tests — the real comparison, on
// whatever Node this is.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, scratchDir } from "./helpers";

const ROOT = resolve(__dirname, "../..");
const CHECK = join(ROOT, "scripts/check-node.cjs");
const [MAJOR, MINOR, PATCH] = process.versions.node.split(".").map(Number);
const scratch: string[] = [];

afterEach(() => cleanup(scratch));

/** A scratch project: the real package.json with `engines.node` replaced, and the check script. */
function projectNeeding(engines: string, strip: { dependencies?: boolean } = {}): string {
  const dir = scratchDir("knock-check-node-", scratch);
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as Record<string, unknown>;
  manifest.engines = { node: engines };
  if (strip.dependencies) {
    delete manifest.dependencies;
    delete manifest.devDependencies;
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify(manifest, null, 2));
  mkdirSync(join(dir, "scripts"));
  copyFileSync(CHECK, join(dir, "scripts/check-node.cjs"));
  return dir;
}

function check(dir: string) {
  return spawnSync(process.execPath, [join(dir, "scripts/check-node.cjs")], { encoding: "utf8" });
}

describe("check-node (npm test and npm install on a too-old Node)", () => {
  it("passes silently on this Node with the project's own engines", () => {
    const run = spawnSync(process.execPath, [CHECK], { encoding: "utf8" });

    expect(run.status).toBe(0);
    expect(run.stdout + run.stderr).toBe("");
  });

  it("passes when this Node is exactly the oldest accepted, down to the patch", () => {
    for (const engines of [`>=${MAJOR}`, `>=${MAJOR}.${MINOR}`, `>=${MAJOR}.${MINOR}.${PATCH}`, `>= ${MAJOR - 1}.99`]) {
      expect({ engines, status: check(projectNeeding(engines)).status }).toEqual({ engines, status: 0 });
    }
  });

  it("stops with one line naming the Node found, the Node needed and scripts/use-node.sh", () => {
    const run = check(projectNeeding(`>=${MAJOR}.${MINOR + 1}`));

    expect(run.status).toBe(1);
    expect(run.stdout).toBe("");
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`Node.js ${process.versions.node} (${process.execPath}) is too old`);
    expect(lines[0]).toContain(`needs Node.js ${MAJOR}.${MINOR + 1} or newer`);
    expect(lines[0]).toContain("source scripts/use-node.sh");
  });

  it("compares each part as a number: a newer patch or major is needed, not a longer string", () => {
    expect(check(projectNeeding(`>=${MAJOR}.${MINOR}.${PATCH + 1}`)).stderr).toContain(`needs Node.js ${MAJOR}.${MINOR}.${PATCH + 1} or newer`);
    expect(check(projectNeeding(`>=${MAJOR + 1}`)).status).toBe(1);
    // As strings "22" < "9"; as numbers this Node (22 or newer) is newer than 9.10.
    expect(check(projectNeeding(">=9.10")).status).toBe(0);
  });

  it("says what it expected when engines is missing or in a form it does not read", () => {
    for (const engines of ["^22.12", ""]) {
      const run = check(projectNeeding(engines));
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/^check-node: cannot read the Node\.js version needed from .*package\.json \(engines\.node should look like ">=22\.12", found ".*"\)\n$/);
    }
  });

  it("npm test stops in pretest, before lint or vitest start, and npm install stops in preinstall", () => {
    // Without dependencies, so that npm install has nothing to fetch before its preinstall runs.
    const dir = projectNeeding(`>=${MAJOR + 1}`, { dependencies: true });
    const npm = (args: string[]) => spawnSync("npm", [...args, "--no-audit", "--no-fund", "--offline"], { cwd: dir, encoding: "utf8" });

    const test = npm(["test"]);
    expect(test.status).not.toBe(0);
    expect(test.stderr).toContain(`needs Node.js ${MAJOR + 1} or newer`);
    expect(test.stdout).toContain("> node scripts/check-node.cjs");
    // The test script itself (lint, then vitest) never ran.
    expect(test.stdout).not.toContain("npm run lint");

    const install = npm(["install"]);
    expect(install.status).not.toBe(0);
    expect(install.stderr).toContain(`needs Node.js ${MAJOR + 1} or newer`);
    // postinstall (the handler's npm ci and the client bundle) never ran.
    expect(install.stdout).not.toContain("npm ci --prefix lambda");
  });
});
