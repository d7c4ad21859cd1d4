// The build-context archive is the image build's trigger: these tests
// prove that its bytes follow the content (names, bytes, exec bit) and nothing else, and that what
// CodeBuild unpacks is exactly the `lambda/` context. The zip is read back with a small reader of
// the central directory written here and with the machine's own unzip tool, never through the
// `files` field alone.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32 } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import {
  BuildContextError,
  createBuildContextArchive,
  listBuildContextFiles,
} from "../infra/build-context";

const REPO_ROOT = path.resolve(__dirname, "..");
const MODULE_PATH = path.join(REPO_ROOT, "infra", "build-context.ts");

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `knock-bc-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

interface FixtureFile {
  readonly content: string | Buffer;
  readonly mode?: number;
}

/** A small but realistic build context; paths are relative to the project root. */
const BASE_FILES: Readonly<Record<string, FixtureFile>> = {
  "lambda/Dockerfile": { content: "FROM public.ecr.aws/docker/library/node:22-bookworm-slim\nCOPY . /app\n" },
  "lambda/package.json": { content: '{ "name": "handler", "version": "1.0.0" }\n' },
  "lambda/package-lock.json": { content: '{ "lockfileVersion": 3 }\n' },
  "lambda/src/index.ts": { content: "export const handler = async () => ({ statusCode: 200 });\n" },
  "lambda/src/lib/util.ts": { content: "export const answer = 42;\n" },
  "lambda/scripts/entrypoint.sh": { content: "#!/bin/sh\nexec node /app/index.js\n", mode: 0o755 },
  "lambda/.dockerignore": { content: "node_modules\n" },
  // Outside the context: must never reach the archive.
  "index.ts": { content: "// the Pulumi program\n" },
  "README.md": { content: "# knock-lambda\n" },
};

const CONTEXT_NAMES = Object.keys(BASE_FILES)
  .filter((name) => name.startsWith("lambda/"))
  .sort();

function writeFixture(root: string, files: Readonly<Record<string, FixtureFile>>, order?: readonly string[]): void {
  for (const name of order ?? Object.keys(files)) {
    const file = files[name];
    const target = path.join(root, ...name.split("/"));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content);
    // chmod explicitly: the mode given to writeFileSync is filtered by the process umask.
    fs.chmodSync(target, file.mode ?? 0o644);
  }
}

function makeProject(
  prefix: string,
  overrides: Readonly<Record<string, FixtureFile>> = {},
  order?: readonly string[],
): string {
  const root = tempDir(prefix);
  writeFixture(root, { ...BASE_FILES, ...overrides }, order);
  return root;
}

async function archiveOf(projectRoot: string): Promise<{ sha256: string; path: string; files: readonly string[] }> {
  return createBuildContextArchive({ projectRoot, outDir: tempDir("out") });
}

function setAllMtimes(root: string, when: Date): void {
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      fs.utimesSync(full, when, when);
    }
  };
  visit(root);
  fs.utimesSync(root, when, when);
}

interface ZipEntry {
  readonly name: string;
  readonly versionMadeBy: number;
  readonly flags: number;
  readonly method: number;
  readonly dosTime: number;
  readonly dosDate: number;
  readonly crc: number;
  readonly externalAttributes: number;
  readonly data: Buffer;
}

/** Reads a zip's central directory and each entry's stored bytes (STORE only, no ZIP64). */
function readZip(zip: Buffer): ZipEntry[] {
  const EOCD = 0x06054b50;
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("no end-of-central-directory record");
  const count = zip.readUInt16LE(eocd + 10);
  const cdSize = zip.readUInt32LE(eocd + 12);
  let offset = zip.readUInt32LE(eocd + 16);
  expect(offset + cdSize).toBe(eocd);

  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(offset)).toBe(0x02014b50);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const name = zip.toString("utf8", offset + 46, offset + 46 + nameLength);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const localOffset = zip.readUInt32LE(offset + 42);

    expect(zip.readUInt32LE(localOffset)).toBe(0x04034b50);
    const localNameLength = zip.readUInt16LE(localOffset + 26);
    const localExtraLength = zip.readUInt16LE(localOffset + 28);
    expect(zip.toString("utf8", localOffset + 30, localOffset + 30 + localNameLength)).toBe(name);
    const dataStart = localOffset + 30 + localNameLength + localExtraLength;

    entries.push({
      name,
      versionMadeBy: zip.readUInt16LE(offset + 4),
      flags: zip.readUInt16LE(offset + 8),
      method,
      dosTime: zip.readUInt16LE(offset + 12),
      dosDate: zip.readUInt16LE(offset + 14),
      crc: zip.readUInt32LE(offset + 16),
      externalAttributes: zip.readUInt32LE(offset + 38),
      data: zip.subarray(dataStart, dataStart + compressedSize),
    });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function zipNames(zipPath: string): string[] {
  return readZip(fs.readFileSync(zipPath)).map((entry) => entry.name);
}

describe("listBuildContextFiles", () => {
  it("lists only the regular files of lambda/, sorted, with POSIX names relative to the project root", () => {
    const root = makeProject("list");
    expect(listBuildContextFiles(root)).toEqual(CONTEXT_NAMES);
  });

  it("orders names by code unit over the whole path, not by folder walk or locale", () => {
    // A folder walk visits "a/" before "a-c.ts"; locale order puts "a.ts" before "B.ts". The
    // archive's entry order must not depend on either, nor on the file system's listing order.
    const root = tempDir("order");
    writeFixture(root, {
      "lambda/a/b.ts": { content: "1" },
      "lambda/a-c.ts": { content: "2" },
      "lambda/a.ts": { content: "3" },
      "lambda/B.ts": { content: "4" },
      "lambda/_z.ts": { content: "5" },
    });
    expect(listBuildContextFiles(root)).toEqual([
      "lambda/B.ts",
      "lambda/_z.ts",
      "lambda/a-c.ts",
      "lambda/a.ts",
      "lambda/a/b.ts",
    ]);
  });

  it("lists another context folder when asked", () => {
    const root = makeProject("other", { "services/fn/Dockerfile": { content: "FROM scratch\n" } });
    expect(listBuildContextFiles(root, "services/fn")).toEqual(["services/fn/Dockerfile"]);
  });

  it("rejects a context folder that is missing, absolute or outside the project, naming it", () => {
    const root = makeProject("bad-dir");
    expect(() => listBuildContextFiles(root, "nope")).toThrow(/"nope" does not exist/);
    expect(() => listBuildContextFiles(root, "../lambda")).toThrow(/Invalid build context folder "\.\.\/lambda"/);
    expect(() => listBuildContextFiles(root, "/etc")).toThrow(BuildContextError);
    expect(() => listBuildContextFiles(root, "README.md")).toThrow(/is not a folder/);
  });

  it("refuses a symbolic link in the context with a message naming it", () => {
    const root = makeProject("symlink");
    fs.symlinkSync(path.join(root, "README.md"), path.join(root, "lambda", "src", "linked.md"));
    expect(() => listBuildContextFiles(root)).toThrow(/"lambda\/src\/linked\.md" is a symbolic link/);
  });

  it("ignores symbolic links inside excluded folders such as node_modules/.bin", () => {
    const root = makeProject("symlink-excluded");
    fs.mkdirSync(path.join(root, "lambda", "node_modules", ".bin"), { recursive: true });
    fs.symlinkSync("../esbuild/bin/esbuild", path.join(root, "lambda", "node_modules", ".bin", "esbuild"));
    expect(listBuildContextFiles(root)).toEqual(CONTEXT_NAMES);
  });

  it("refuses a file name with a backslash, which a zip would turn into a folder", () => {
    const root = makeProject("backslash", { "lambda/src/a\\b.ts": { content: "x" } });
    expect(() => listBuildContextFiles(root)).toThrow(/contains a backslash/);
  });
});

describe("createBuildContextArchive", () => {
  it("returns the SHA-256 of the zip bytes and names the file after it", async () => {
    const archive = await archiveOf(makeProject("hash"));
    const bytes = fs.readFileSync(archive.path);
    expect(archive.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(archive.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(path.basename(archive.path)).toBe(`build-context-${archive.sha256}.zip`);
    expect(path.isAbsolute(archive.path)).toBe(true);
    expect(archive.files).toEqual(CONTEXT_NAMES);
    expect(zipNames(archive.path)).toEqual(CONTEXT_NAMES);
  });

  it("gives the same bytes whatever the files' mtimes", async () => {
    const root = makeProject("mtime");
    setAllMtimes(root, new Date("2001-02-03T04:05:06Z"));
    const first = await archiveOf(root);
    setAllMtimes(root, new Date("2031-12-30T23:59:59Z"));
    const second = await archiveOf(root);
    expect(second.sha256).toBe(first.sha256);
    expect(fs.readFileSync(second.path).equals(fs.readFileSync(first.path))).toBe(true);
  });

  it("gives the same bytes whatever the creation order and wherever the project lives", async () => {
    const names = Object.keys(BASE_FILES);
    const forward = makeProject("order-a", {}, names);
    const backward = makeProject("order-b-with-a-longer-path", {}, [...names].reverse());
    const shuffled = makeProject("order-c", {}, [...names.slice(3), ...names.slice(0, 3)]);
    const hashes = await Promise.all([forward, backward, shuffled].map(async (root) => (await archiveOf(root)).sha256));
    expect(new Set(hashes).size).toBe(1);
  });

  it("gives the same bytes in every time zone and under any umask", async () => {
    const root = makeProject("tz");
    const inProcess = (await archiveOf(root)).sha256;
    const script = path.join(tempDir("tz-script"), "archive.mjs");
    fs.writeFileSync(
      script,
      [
        `import { pathToFileURL } from "node:url";`,
        `process.umask(0o077);`,
        `const { createBuildContextArchive } = await import(pathToFileURL(${JSON.stringify(MODULE_PATH)}).href);`,
        `const archive = await createBuildContextArchive({ projectRoot: process.argv[2], outDir: process.argv[3] });`,
        `const offset = new Date(Date.UTC(2000, 0, 1)).getTimezoneOffset();`,
        `console.log(JSON.stringify({ sha256: archive.sha256, offset }));`,
      ].join("\n"),
    );
    // Expected offsets on 2000-01-01 prove that the child really ran in that zone: a pinned date
    // converted with local-time getters would then land on another DOS timestamp.
    const zones: ReadonlyArray<[string, number]> = [
      ["UTC", 0],
      ["Pacific/Kiritimati", -840],
      ["America/Los_Angeles", 480],
      ["Asia/Kolkata", -330],
    ];
    for (const [zone, expectedOffset] of zones) {
      const stdout = execFileSync(process.execPath, ["--import", "tsx", script, root, tempDir("tz-out")], {
        cwd: REPO_ROOT,
        env: { ...process.env, TZ: zone },
        encoding: "utf8",
      });
      const result = JSON.parse(stdout.trim().split("\n").pop() ?? "") as { sha256: string; offset: number };
      expect({ zone, offset: result.offset }).toEqual({ zone, offset: expectedOffset });
      expect({ zone, sha256: result.sha256 }).toEqual({ zone, sha256: inProcess });
    }
  });

  it("ignores permission bits other than the exec bit", async () => {
    const modes = [0o600, 0o644, 0o664, 0o444];
    const hashes = await Promise.all(
      modes.map(async (mode) => {
        const root = makeProject(`mode-${mode.toString(8)}`, {
          "lambda/package.json": { content: BASE_FILES["lambda/package.json"].content, mode },
          "lambda/scripts/entrypoint.sh": { content: BASE_FILES["lambda/scripts/entrypoint.sh"].content, mode: mode | 0o100 },
        });
        return (await archiveOf(root)).sha256;
      }),
    );
    expect(new Set(hashes).size).toBe(1);
  });

  it("changes when a file gains the exec bit", async () => {
    const plain = await archiveOf(makeProject("exec-off"));
    const executable = await archiveOf(
      makeProject("exec-on", { "lambda/src/index.ts": { content: BASE_FILES["lambda/src/index.ts"].content, mode: 0o755 } }),
    );
    expect(executable.sha256).not.toBe(plain.sha256);
  });

  it("changes when one byte of one file changes", async () => {
    const before = await archiveOf(makeProject("byte-a"));
    const after = await archiveOf(
      makeProject("byte-b", { "lambda/src/lib/util.ts": { content: "export const answer = 43;\n" } }),
    );
    expect(after.sha256).not.toBe(before.sha256);
  });

  it("changes when a file is renamed", async () => {
    const root = makeProject("rename");
    const before = await archiveOf(root);
    fs.renameSync(path.join(root, "lambda", "src", "lib", "util.ts"), path.join(root, "lambda", "src", "lib", "utils.ts"));
    const after = await archiveOf(root);
    expect(after.sha256).not.toBe(before.sha256);
    expect(zipNames(after.path)).toContain("lambda/src/lib/utils.ts");
    expect(zipNames(after.path)).not.toContain("lambda/src/lib/util.ts");
  });

  it("changes when a file is added or removed in the context", async () => {
    const root = makeProject("add-remove");
    const before = await archiveOf(root);
    fs.writeFileSync(path.join(root, "lambda", "src", "extra.ts"), "");
    const added = await archiveOf(root);
    fs.rmSync(path.join(root, "lambda", "src", "extra.ts"));
    const removed = await archiveOf(root);
    expect(added.sha256).not.toBe(before.sha256);
    expect(removed.sha256).toBe(before.sha256);
  });

  it("leaves out node_modules, dist, .git, state, test output, logs, dotenv files and OS junk, and ignores changes there", async () => {
    const root = makeProject("excluded");
    const before = await archiveOf(root);
    const junk: Record<string, FixtureFile> = {
      "lambda/node_modules/left-pad/index.js": { content: "module.exports = 1;\n" },
      "lambda/src/node_modules/nested/index.js": { content: "nested\n" },
      "lambda/dist/index.js": { content: "bundled\n" },
      "lambda/src/lib/dist/out.js": { content: "nested build\n" },
      "lambda/.git/HEAD": { content: "ref: refs/heads/main\n" },
      "lambda/.pulumi/stacks/dev.json": { content: "{}\n" },
      "lambda/coverage/lcov.info": { content: "TN:\n" },
      "lambda/.nyc_output/out.json": { content: "{}\n" },
      "lambda/test-results/junit.xml": { content: "<testsuites/>\n" },
      "lambda/.DS_Store": { content: Buffer.from([0, 0, 0, 1, 66, 117, 100, 49]) },
      "lambda/src/.DS_Store": { content: Buffer.from([0, 0, 0, 1]) },
      "lambda/src/._index.ts": { content: "AppleDouble\n" },
      "lambda/Thumbs.db": { content: "thumbs\n" },
      "lambda/npm-debug.log": { content: "npm ERR!\n" },
      "lambda/src/server.log": { content: "log line\n" },
      "lambda/tsconfig.tsbuildinfo": { content: "{}\n" },
      "lambda/src/.index.ts.swp": { content: "swap\n" },
      "lambda/src/index.ts~": { content: "backup\n" },
      "lambda/.env": { content: "SECRET=1\n" },
      "lambda/.env.local": { content: "SECRET=2\n" },
    };
    writeFixture(root, junk);
    const withJunk = await archiveOf(root);
    expect(withJunk.sha256).toBe(before.sha256);
    expect(zipNames(withJunk.path)).toEqual(CONTEXT_NAMES);

    // A change inside an excluded folder must not re-run the build either.
    fs.writeFileSync(path.join(root, "lambda", "node_modules", "left-pad", "index.js"), "module.exports = 2;\n");
    fs.writeFileSync(path.join(root, "lambda", ".git", "HEAD"), "ref: refs/heads/other\n");
    fs.writeFileSync(path.join(root, "lambda", "dist", "index.js"), "rebuilt\n");
    const changedJunk = await archiveOf(root);
    expect(changedJunk.sha256).toBe(before.sha256);
  });

  it("does not represent folders, so an empty folder changes nothing", async () => {
    const root = makeProject("empty-dir");
    const before = await archiveOf(root);
    fs.mkdirSync(path.join(root, "lambda", "src", "empty"), { recursive: true });
    const after = await archiveOf(root);
    expect(after.sha256).toBe(before.sha256);
    expect(zipNames(after.path).filter((name) => name.endsWith("/"))).toEqual([]);
  });

  it("stores every entry uncompressed, dated 2000-01-01 00:00, with a Unix mode of 0644 or 0755", async () => {
    const root = makeProject("headers");
    const archive = await archiveOf(root);
    const entries = readZip(fs.readFileSync(archive.path));
    expect(entries.map((entry) => entry.name)).toEqual(CONTEXT_NAMES);
    for (const entry of entries) {
      const expectedContent = fs.readFileSync(path.join(root, ...entry.name.split("/")));
      const executable = entry.name === "lambda/scripts/entrypoint.sh";
      expect({
        name: entry.name,
        madeByUnix: entry.versionMadeBy >> 8,
        method: entry.method,
        dataDescriptor: (entry.flags & 0x8) !== 0,
        dosDate: entry.dosDate,
        dosTime: entry.dosTime,
        unixMode: (entry.externalAttributes >>> 16).toString(8),
        crcMatches: entry.crc === crc32(expectedContent) >>> 0,
        contentMatches: entry.data.equals(expectedContent),
      }).toEqual({
        name: entry.name,
        madeByUnix: 3,
        method: 0,
        dataDescriptor: false,
        dosDate: ((2000 - 1980) << 9) | (1 << 5) | 1,
        dosTime: 0,
        unixMode: executable ? "100755" : "100644",
        crcMatches: true,
        contentMatches: true,
      });
    }
  });

  it("writes a zip that unzip extracts with the expected names, contents and exec bit", async () => {
    const root = makeProject("extract");
    const archive = await archiveOf(root);
    const target = tempDir("extracted");
    const unzip = spawnSync("unzip", ["-q", archive.path, "-d", target], { encoding: "utf8" });
    if (unzip.error === undefined) {
      expect(unzip.stderr).toBe("");
      expect(unzip.status).toBe(0);
    } else {
      // No unzip on this machine: Python's zipfile extracts (without modes, so apply them from the
      // external attributes exactly as unzip would).
      const python = spawnSync(
        "python3",
        [
          "-c",
          "import os,sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n  p=z.extract(i,sys.argv[2])\n  os.chmod(p,(i.external_attr>>16)&0o777)",
          archive.path,
          target,
        ],
        { encoding: "utf8" },
      );
      expect(python.error).toBeUndefined();
      expect(python.status).toBe(0);
    }

    const extracted: string[] = [];
    const visit = (dir: string, prefix: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const name = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
        if (entry.isDirectory()) visit(path.join(dir, entry.name), name);
        else extracted.push(name);
      }
    };
    visit(target, "");
    expect(extracted.sort()).toEqual(CONTEXT_NAMES);

    for (const name of CONTEXT_NAMES) {
      const out = path.join(target, ...name.split("/"));
      expect(fs.readFileSync(out).equals(fs.readFileSync(path.join(root, ...name.split("/"))))).toBe(true);
      const executable = (fs.statSync(out).mode & 0o100) !== 0;
      expect({ name, executable }).toEqual({ name, executable: name === "lambda/scripts/entrypoint.sh" });
    }
  });

  it("leaves no file behind when it fails", async () => {
    const root = makeProject("fail");
    fs.symlinkSync(path.join(root, "README.md"), path.join(root, "lambda", "README.md"));
    const outDir = tempDir("fail-out");
    await expect(createBuildContextArchive({ projectRoot: root, outDir })).rejects.toThrow(/symbolic link/);
    expect(fs.readdirSync(outDir)).toEqual([]);

    const empty = tempDir("empty");
    fs.mkdirSync(path.join(empty, "lambda", "node_modules", "x"), { recursive: true });
    fs.writeFileSync(path.join(empty, "lambda", "node_modules", "x", "index.js"), "");
    await expect(createBuildContextArchive({ projectRoot: empty, outDir })).rejects.toThrow(/holds no file to archive/);
    expect(fs.readdirSync(outDir)).toEqual([]);
  });

  it("removes its temporary file when the finished zip cannot be put in place", async () => {
    const root = makeProject("rename-fails");
    const { sha256 } = await archiveOf(root);
    // A non-empty folder where the zip should go makes the final rename fail after the zip is written.
    const outDir = tempDir("blocked-out");
    const blocker = path.join(outDir, `build-context-${sha256}.zip`);
    fs.mkdirSync(path.join(blocker, "occupied"), { recursive: true });
    await expect(createBuildContextArchive({ projectRoot: root, outDir })).rejects.toThrow();
    expect(fs.readdirSync(outDir)).toEqual([path.basename(blocker)]);
  });

  it("creates the output folder and can be called twice for the same content", async () => {
    const root = makeProject("twice");
    const outDir = path.join(tempDir("nested-out"), "a", "b");
    const first = await createBuildContextArchive({ projectRoot: root, outDir });
    const second = await createBuildContextArchive({ projectRoot: root, outDir });
    expect(second).toEqual(first);
    // Only the finished zip remains: no temporary file left next to it.
    expect(fs.readdirSync(outDir)).toEqual([path.basename(first.path)]);
  });
});

describe("the repository's lambda/ build context", () => {
  it("archives the handler package and none of lambda/node_modules", async () => {
    // The premise: the handler's dependencies are installed, so exclusion is really exercised.
    expect(fs.existsSync(path.join(REPO_ROOT, "lambda", "node_modules"))).toBe(true);

    const archive = await createBuildContextArchive({ projectRoot: REPO_ROOT, outDir: tempDir("repo-out") });
    const names = zipNames(archive.path);
    expect(names).toEqual(archive.files);
    expect(names).toEqual(listBuildContextFiles(REPO_ROOT));
    expect(names).toEqual(expect.arrayContaining(["lambda/package.json", "lambda/package-lock.json", "lambda/tsconfig.json"]));
    expect(names.some((name) => name.startsWith("lambda/src/") && name.endsWith(".ts"))).toBe(true);
    expect(names.includes("lambda/Dockerfile")).toBe(fs.existsSync(path.join(REPO_ROOT, "lambda", "Dockerfile")));
    expect(names.filter((name) => !name.startsWith("lambda/"))).toEqual([]);
    expect(names.filter((name) => /(^|\/)(node_modules|dist|\.git)(\/|$)/.test(name))).toEqual([]);
  });
});
