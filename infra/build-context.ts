// The Docker build context shipped to CodeBuild as `source.zip`, and its SHA-256: the trigger that
// re-runs the remote image build. The original zipped the whole project root and keyed the
// rebuild on an always-empty S3 version id, so the two properties that matter
// here are *scope* (only the build context) and *determinism* (the bytes depend on file content,
// names and the exec bit, and on nothing else: not mtimes, umask, listing order, time zone, host
// path or the zlib build of the machine).
import { ZipArchive } from "archiver";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

/** The zip of the build context written by {@link createBuildContextArchive}. */
export interface BuildContextArchive {
  /** Absolute path of the zip file written. */
  readonly path: string;
  /** Hex SHA-256 of the zip bytes — the build trigger. */
  readonly sha256: string;
  /** Archive entry names, sorted, POSIX separators, e.g. "lambda/Dockerfile". */
  readonly files: readonly string[];
}

/** Options of {@link createBuildContextArchive}. */
export interface BuildContextArchiveOptions {
  /** The project root; entry names are relative to it (the zip holds the `lambda/` folder). */
  readonly projectRoot: string;
  /**
   * The build context folder, relative to `projectRoot`, POSIX separators.
   * @default "lambda"
   */
  readonly contextDir?: string;
  /**
   * Where the zip is written (created if missing).
   * @default os.tmpdir()
   */
  readonly outDir?: string;
}

/** Thrown when the build context cannot be archived as asked; the message says what to change. */
export class BuildContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BuildContextError";
  }
}

/** The default build context: CodeBuild runs `docker build -f lambda/Dockerfile lambda/`. */
export const DEFAULT_CONTEXT_DIR = "lambda";

/**
 * Names skipped wherever they appear in the context, as files or folders. A fixed list rather than
 * `lambda/.dockerignore`: Docker's ignore syntax (`**`, `!` re-inclusion, last match wins) is easy
 * to get subtly wrong, and a wrong exclusion here would break the build or hide a change from the
 * trigger. `.dockerignore` itself is archived, so Docker still applies it on CodeBuild.
 */
const EXCLUDED_NAMES: ReadonlySet<string> = new Set([
  // Installed or built inside the image from the lock file; the host's copy is platform-specific.
  "node_modules",
  "dist",
  // Version control and state: never part of the image, and huge or secret.
  ".git",
  ".hg",
  ".svn",
  ".pulumi",
  // Test and coverage output changes on every test run; it must not trigger a rebuild.
  "coverage",
  ".nyc_output",
  "test-results",
  // OS and editor junk that appears behind the user's back.
  ".DS_Store",
  "Thumbs.db",
  "desktop.ini",
  ".idea",
  ".vscode",
]);

/**
 * File-name patterns skipped anywhere: logs, build info, editor swap and backup files, AppleDouble,
 * and dotenv files (local secrets must not be uploaded to the source bucket; the image never reads
 * them, and lambda/.dockerignore keeps them out of Docker's context anyway).
 */
const EXCLUDED_PATTERNS: readonly RegExp[] = [/\.log$/, /\.tsbuildinfo$/, /\.sw[op]$/, /~$/, /^\._/, /^\.env($|\.)/];

/**
 * Every entry gets this date. Pinned because file mtimes differ between checkouts; passed as a
 * `Date` (not a string) because zip-stream only parses strings with `new Date(string)`, and
 * compress-commons converts a `Date` to the DOS timestamp with the UTC getters unless
 * `forceLocalTime` is set, so the header bytes are the same in every time zone. 2000 rather than
 * the DOS epoch (1980) so that readers converting to local time never land before 1980.
 */
const ENTRY_DATE = new Date(Date.UTC(2000, 0, 1, 0, 0, 0));

/** The only permission distinction kept: whether anyone may execute the file. */
const MODE_EXECUTABLE = 0o755;
const MODE_REGULAR = 0o644;

interface ContextFile {
  /** Entry name in the zip, e.g. "lambda/src/index.ts". */
  readonly name: string;
  readonly absolutePath: string;
  readonly executable: boolean;
}

/**
 * Lists the files that belong to the build context: every regular file under `contextDir` except
 * dependency folders, build output, VCS and Pulumi state, test/coverage output, logs, dotenv files
 * and OS/editor junk (see `EXCLUDED_NAMES` and `EXCLUDED_PATTERNS`). Reads the file tree, writes nothing.
 *
 * @param projectRoot - the project root; names are relative to it.
 * @param contextDir - the context folder relative to the root (default `"lambda"`).
 * @returns the archive entry names, sorted, with POSIX separators (e.g. `"lambda/Dockerfile"`).
 * @throws {@link BuildContextError} if the folder is missing, escapes the root, holds a symbolic
 *   link or a special file, or a name the zip cannot represent faithfully.
 */
export function listBuildContextFiles(projectRoot: string, contextDir: string = DEFAULT_CONTEXT_DIR): string[] {
  return collectContextFiles(projectRoot, contextDir).map((file) => file.name);
}

/**
 * Writes the deterministic zip of the build context and returns its path, SHA-256 and entries.
 *
 * The zip holds one entry per file (no directory entries, so empty folders are not represented),
 * sorted by name, stored uncompressed, dated {@link ENTRY_DATE}, with Unix mode 0755 for files
 * anyone may execute and 0644 for the rest. The file is named after its hash
 * (`build-context-<sha256>.zip`) and appears only once complete: it is written under a unique
 * temporary name and renamed, and the temporary file is removed on any error.
 *
 * @throws {@link BuildContextError} for the cases listed on {@link listBuildContextFiles}, or when
 *   the context holds no file.
 */
export async function createBuildContextArchive(options: BuildContextArchiveOptions): Promise<BuildContextArchive> {
  const contextDir = options.contextDir ?? DEFAULT_CONTEXT_DIR;
  const files = collectContextFiles(options.projectRoot, contextDir);
  if (files.length === 0) {
    throw new BuildContextError(
      `The build context "${contextDir}" under ${path.resolve(options.projectRoot)} holds no file to archive ` +
        `(everything in it is excluded or it is empty); it must contain at least the Dockerfile.`,
    );
  }
  // Read everything before the output file exists, so a read failure cannot leave a partial zip.
  // The context is a Dockerfile and handler sources: small enough to hold in memory.
  const contents = await Promise.all(files.map((file) => fs.promises.readFile(file.absolutePath)));

  const outDir = path.resolve(options.outDir ?? os.tmpdir());
  await fs.promises.mkdir(outDir, { recursive: true });
  const partialPath = path.join(outDir, `.build-context-${process.pid}-${randomBytes(8).toString("hex")}.zip.partial`);
  try {
    const sha256 = await writeZip(partialPath, files, contents);
    const finalPath = path.join(outDir, `build-context-${sha256}.zip`);
    // Same content gives the same name and the same bytes, so replacing an earlier copy is harmless.
    await fs.promises.rename(partialPath, finalPath);
    return { path: finalPath, sha256, files: Object.freeze(files.map((file) => file.name)) };
  } catch (error) {
    await fs.promises.rm(partialPath, { force: true });
    throw error;
  }
}

/** Streams the zip to `target` and returns the SHA-256 of the bytes written. */
async function writeZip(target: string, files: readonly ContextFile[], contents: readonly Buffer[]): Promise<string> {
  // Level 0 (STORE): deflate output is not specified byte-for-byte, and Node's bundled zlib (a
  // Chromium fork with CPU-specific fast paths) may compress the same input differently on another
  // machine or Node release, which would rebuild the image for nothing. The context is a few
  // hundred KB at most; S3 does not mind.
  const archive = new ZipArchive({ zlib: { level: 0 }, forceZip64: false });
  // archiver reports missing files and similar as warnings; any of them means an incomplete archive.
  archive.on("warning", (warning: Error) => archive.destroy(warning));

  const hash = createHash("sha256");
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  // `wx` refuses to reuse an existing file: the name is unique, so an existing one is a bug.
  const written = pipeline(archive, tap, fs.createWriteStream(target, { flags: "wx", mode: 0o644 }));

  files.forEach((file, index) => {
    archive.append(contents[index], {
      name: file.name,
      date: ENTRY_DATE,
      mode: file.executable ? MODE_EXECUTABLE : MODE_REGULAR,
    });
  });
  // Both promises are awaited together so that a failure of either is reported, never left unhandled.
  await Promise.all([written, archive.finalize()]);
  return hash.digest("hex");
}

/** Walks the context folder and returns its files, sorted by entry name. */
function collectContextFiles(projectRoot: string, contextDir: string): ContextFile[] {
  const root = path.resolve(projectRoot);
  const contextSegments = parseContextDir(contextDir);
  const contextPath = path.join(root, ...contextSegments);

  let stats: fs.Stats;
  try {
    stats = fs.statSync(contextPath);
  } catch {
    throw new BuildContextError(
      `The build context folder "${contextDir}" does not exist under ${root}; ` +
        `it must be a folder holding the Dockerfile (default "${DEFAULT_CONTEXT_DIR}").`,
    );
  }
  if (!stats.isDirectory()) {
    throw new BuildContextError(`The build context "${contextDir}" under ${root} is not a folder; it must be one.`);
  }

  const files: ContextFile[] = [];
  const walk = (directory: string, nameSegments: readonly string[]): void => {
    for (const entry of fs.readdirSync(directory)) {
      if (EXCLUDED_NAMES.has(entry) || EXCLUDED_PATTERNS.some((pattern) => pattern.test(entry))) {
        continue;
      }
      const absolutePath = path.join(directory, entry);
      const segments = [...nameSegments, entry];
      const name = segments.join("/");
      // lstat, not stat: a link must be seen as a link to be refused.
      const entryStats = fs.lstatSync(absolutePath);
      if (entryStats.isSymbolicLink()) {
        // Refused rather than followed: a link can point outside the context (Docker itself would
        // send it as a link, not as the target's content), and a followed target's changes would
        // hide behind a name that did not change.
        throw new BuildContextError(
          `"${name}" is a symbolic link; the build context may only hold regular files and folders. ` +
            `Replace the link with a copy of its target, or move it out of "${contextDir}".`,
        );
      }
      if (entryStats.isDirectory()) {
        walk(absolutePath, segments);
      } else if (entryStats.isFile()) {
        checkEntryName(name);
        files.push({ name, absolutePath, executable: (entryStats.mode & 0o111) !== 0 });
      } else {
        throw new BuildContextError(
          `"${name}" is neither a regular file nor a folder (a socket, FIFO or device); ` +
            `the build context may only hold regular files and folders.`,
        );
      }
    }
  };
  walk(contextPath, contextSegments);

  // Plain code-unit order, not localeCompare: the order must not depend on the machine's locale.
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Splits a context folder such as "lambda" or "services/lambda" into safe path segments. */
function parseContextDir(contextDir: string): string[] {
  const segments = contextDir.split("/").filter((segment) => segment !== "" && segment !== ".");
  const valid =
    !path.isAbsolute(contextDir) &&
    !path.win32.isAbsolute(contextDir) &&
    segments.length > 0 &&
    segments.every((segment) => /^[A-Za-z0-9._-]+$/.test(segment) && segment !== "..");
  if (!valid) {
    throw new BuildContextError(
      `Invalid build context folder "${contextDir}": it must be a relative path inside the project, ` +
        `with "/" separators and segments of letters, digits, ".", "_" or "-" (no ".."), e.g. "${DEFAULT_CONTEXT_DIR}".`,
    );
  }
  return segments;
}

/** Refuses names that archiver would rewrite, so the zip holds exactly the names listed. */
function checkEntryName(name: string): void {
  // archiver turns "\" into "/", which would silently move the file (or merge two files).
  if (name.includes("\\")) {
    throw new BuildContextError(
      `"${name}" contains a backslash, which a zip entry name cannot hold (it means a folder separator there); rename the file.`,
    );
  }
  // The zip format stores name lengths in 16 bits.
  if (Buffer.byteLength(name, "utf8") > 0xffff) {
    throw new BuildContextError(`"${name.slice(0, 80)}…" is too long for a zip entry name (at most 65535 bytes).`);
  }
}
