import { createHash, randomBytes } from "node:crypto";
import { constants, copyFile, link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import type { ConditionalCreate, ConditionalDelete, ConditionalReplace, ListedObject, ObjectStore, PresignedUrl, StoredObject } from "../../lambda/src/public";

/** An S3 ETag for bytes stored by a single-part PUT: the quoted hex MD5 of the bytes. */
export function etagOf(bytes: Buffer | string): string {
  return `"${createHash("md5").update(bytes).digest("hex")}"`;
}

/** An ETag as S3 compares it: without the quotes and the weak marker. */
function bareEtag(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** What a write leaves beside its target until it is renamed or linked into place; never an object. */
const TEMPORARY = /\.[0-9a-f]{12}\.tmp$/;

/**
 * Beside an object uploaded with user metadata (S3 keeps `x-amz-meta-*` with the object and answers
 * it on HEAD): the metadata as JSON, never listed as an object, removed with the object.
 */
const METADATA_SUFFIX = ".s3-metadata.json";

/** Makes a GET link for an object (knock serve: its signed `/_downloads/…` links). */
export type LinkMaker = (key: string, filename: string, contentType: string, expirySeconds: number) => PresignedUrl | Promise<PresignedUrl>;

/** Options for {@link fileObjects}. */
export interface FileObjectsOptions {
  /** How {@link ObjectStore.presignGet} makes links. @default none: presignGet refuses */
  readonly links?: LinkMaker;
  /**
   * How long an object lives after its last write, when something removes it then (knock serve's
   * pruning of books): HEAD answers it as `expiresAt`, as S3 answers a lifecycle rule's expiry
   * (`x-amz-expiration`), so that no link outlives its object. @default none: objects never expire
   */
  readonly lifetimeMs?: number;
}

/** {@link ObjectStore} on a folder, and where its objects are. */
export interface FileObjects extends ObjectStore {
  /** The folder, absolute. */
  readonly root: string;
  /** The file an object is kept in; throws for a key that would leave the folder. */
  pathOf(key: string): string;
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * One bucket as files under a folder: an object's key is its path below `root` (`adept/device.json`
 * is `<root>/adept/device.json`), with the rules S3 applies to the requests the function's stores
 * make (lambda/src/object-store.ts lists them): the version is the ETag — the quoted MD5 of the
 * bytes, as S3's for a single-part PUT; a plain PUT replaces the object; `If-None-Match: *` fails
 * when the key exists ("exists"); a PUT or DELETE with `If-Match: <ETag>` answers "absent" or
 * "changed"; a plain DELETE of a missing key succeeds; "last modified" is the file's mtime. Keys
 * with an empty, `.` or `..` segment, or that would resolve outside `root`, are refused.
 *
 * A crash never leaves half an object: a PUT writes a temporary file beside the target and renames
 * it into place; a conditional create links it, which unlike rename fails when the name exists.
 * Requests on one key are serialised in this process, as S3 serialises conditional requests per
 * key; one `knock serve` owns a data folder at a time (see lockDataFolder).
 */
export function fileObjects(root: string, options: FileObjectsOptions = {}): FileObjects {
  const base = resolve(root);
  const queues = new Map<string, Promise<unknown>>();

  const serialised = <T>(key: string, op: () => Promise<T>): Promise<T> => {
    const turn = (queues.get(key) ?? Promise.resolve()).then(op, op);
    const tail = turn.catch(() => undefined);
    queues.set(key, tail);
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key);
    });
    return turn;
  };

  const pathOf = (key: string): string => {
    const segments = key.split("/");
    const path = resolve(base, key);
    if (key.includes("\0") || segments.some((s) => s === "" || s === "." || s === "..") || TEMPORARY.test(key) || key.endsWith(METADATA_SUFFIX) || !path.startsWith(base + sep)) {
      throw new Error(`object key escapes the store: ${key}`);
    }
    return path;
  };

  /** A temporary file beside `key`'s, filled by `fill`. */
  const temporary = async (key: string, fill: (tmp: string) => Promise<void>): Promise<{ target: string; tmp: string }> => {
    const target = pathOf(key);
    const tmp = `${target}.${randomBytes(6).toString("hex")}.tmp`;
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      try {
        await fill(tmp);
        return { target, tmp };
      } catch (err) {
        // The folder was removed between the two (an empty one is pruned): make it again.
        if (code(err) !== "ENOENT" || attempt > 0) {
          await unlink(tmp).catch(() => undefined);
          throw err;
        }
      }
    }
  };
  const withBytes = (bytes: Buffer | string) => (tmp: string) => writeFile(tmp, bytes, { mode: 0o600, flag: "wx" });

  /** Moves a complete temporary file over the object, so no reader sees half of it. */
  const replace = async (key: string, fill: (tmp: string) => Promise<void>): Promise<void> => {
    const { target, tmp } = await temporary(key, fill);
    try {
      await rename(tmp, target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  };

  const get = async (key: string): Promise<StoredObject | undefined> => {
    try {
      const body = await readFile(pathOf(key));
      return { body, etag: etagOf(body) };
    } catch (err) {
      // A folder is no object, as `adept` is no key in a bucket holding `adept/device.json`.
      if (code(err) === "ENOENT" || code(err) === "EISDIR" || code(err) === "ENOTDIR") return undefined;
      throw err;
    }
  };

  const unlinkMissingOk = async (key: string): Promise<boolean> => {
    try {
      await unlink(pathOf(key));
      return true;
    } catch (err) {
      if (code(err) === "ENOENT") return false;
      throw err;
    }
  };

  /** Runs `op` only while the object is still version `etag`. */
  const ifMatch = async <T>(key: string, etag: string, op: () => Promise<T>): Promise<T | "changed" | "absent"> => {
    const current = await get(key);
    if (current === undefined) return "absent";
    if (bareEtag(current.etag) !== bareEtag(etag)) return "changed";
    return op();
  };

  const walk = async (dir: string, keyPrefix: string, out: ListedObject[], wanted: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (code(err) === "ENOENT" || code(err) === "ENOTDIR") return;
      throw err;
    }
    for (const entry of entries) {
      const key = `${keyPrefix}${entry.name}`;
      if (entry.isDirectory()) {
        if (wanted.startsWith(`${key}/`) || `${key}/`.startsWith(wanted)) await walk(join(dir, entry.name), `${key}/`, out, wanted);
        continue;
      }
      if (!key.startsWith(wanted) || TEMPORARY.test(entry.name) || entry.name.endsWith(METADATA_SUFFIX)) continue;
      const info = await stat(join(dir, entry.name)).catch(() => undefined); // gone meanwhile: not listed
      if (info?.isFile()) out.push({ key, lastModified: info.mtime, size: info.size });
    }
  };

  return {
    root: base,
    pathOf,
    get,
    async head(key) {
      const info = await stat(pathOf(key)).catch((err: unknown) => {
        if (code(err) === "ENOENT" || code(err) === "ENOTDIR") return undefined;
        throw err;
      });
      // A folder is no object (see get).
      if (!info?.isFile()) return undefined;
      const metadata = await readFile(`${pathOf(key)}${METADATA_SUFFIX}`, "utf8").then(
        (text) => JSON.parse(text) as Record<string, string>,
        () => undefined,
      );
      const expiresAt = options.lifetimeMs === undefined ? undefined : new Date(info.mtime.getTime() + options.lifetimeMs);
      return { lastModified: info.mtime, ...(expiresAt === undefined ? {} : { expiresAt }), ...(metadata === undefined ? {} : { metadata }) };
    },
    put: (key, body) => serialised(key, () => replace(key, withBytes(body))),
    putIfAbsent: (key, body) =>
      serialised(key, async (): Promise<ConditionalCreate> => {
        const { target, tmp } = await temporary(key, withBytes(body));
        try {
          await link(tmp, target);
          return { etag: etagOf(body) };
        } catch (err) {
          if (code(err) === "EEXIST") return "exists";
          throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      }),
    putIfMatch: (key, etag, body) =>
      serialised(key, (): Promise<ConditionalReplace> =>
        ifMatch(key, etag, async () => {
          await replace(key, withBytes(body));
          return { etag: etagOf(body) };
        }),
      ),
    deleteIfMatch: (key, etag) =>
      serialised(key, (): Promise<ConditionalDelete> => ifMatch(key, etag, async () => ((await unlinkMissingOk(key)) ? "removed" : "absent"))),
    delete: (key) =>
      serialised(key, async () => {
        await unlinkMissingOk(key);
        await unlink(`${pathOf(key)}${METADATA_SUFFIX}`).catch(() => undefined);
      }),
    async list(prefix) {
      const out: ListedObject[] = [];
      // Start in the deepest folder the prefix names whole (`adept/loans/` → <root>/adept/loans).
      const folder = prefix.slice(0, prefix.lastIndexOf("/") + 1);
      await walk(folder === "" ? base : pathOf(folder.slice(0, -1)), folder, out, prefix);
      return out;
    },
    // A copy made by the kernel, never held in memory, then renamed into place like any PUT.
    // The metadata goes first: a crash between the two leaves metadata without its object, which
    // nothing lists, never an object with another upload's metadata.
    upload: (key, path, _contentType, metadata) =>
      serialised(key, async () => {
        const side = `${pathOf(key)}${METADATA_SUFFIX}`;
        if (metadata === undefined) await unlink(side).catch(() => undefined);
        else {
          await mkdir(dirname(side), { recursive: true });
          await writeFile(side, JSON.stringify(metadata));
        }
        await replace(key, (tmp) => copyFile(path, tmp, constants.COPYFILE_EXCL));
      }),
    async presignGet(key, filename, contentType, expirySeconds) {
      pathOf(key);
      if (options.links === undefined) throw new Error(`this folder's objects have no download links: ${base}`);
      return options.links(key, filename, contentType, expirySeconds);
    },
  };
}
