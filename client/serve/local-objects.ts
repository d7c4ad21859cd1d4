import { createHash, randomBytes } from "node:crypto";
import { link, mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ConditionalDelete, ConditionalReplace } from "../../lambda/src/s3-conditional";

/** An S3 ETag for bytes stored by a single-part PUT: the quoted hex MD5 of the bytes. */
export function etagOf(bytes: Buffer | string): string {
  return `"${createHash("md5").update(bytes).digest("hex")}"`;
}

/** An object's body and the version (ETag) it was read at. */
export interface LocalObject {
  readonly bytes: Buffer;
  readonly etag: string;
}

/**
 * Objects as files under a data folder, keyed like the device bucket's objects
 * (`<dataDir>/<key>`), with the rules S3 applies to the requests the handler's stores make (Amazon
 * S3 User Guide, "Conditional requests"; lambda/src/s3-conditional.ts does the same against S3):
 * the version is the ETag; a plain PUT replaces the object; a PUT with `If-None-Match: *` fails when
 * the key exists (S3: 412); a DELETE with `If-Match: <ETag>` answers "absent" (S3: 404 NoSuchKey)
 * or "changed" (S3: 412), and so does a PUT with `If-Match: <ETag>`; a plain DELETE of a missing key
 * succeeds (S3: 204).
 *
 * A crash never leaves half an object: a PUT writes a temporary file and renames it; a conditional
 * PUT links it into place, which unlike rename fails when the name exists. Writes and conditional
 * operations are serialised in this process, as S3 serialises conditional requests per key; one
 * `knock serve` owns a data folder at a time (see lockDataFolder).
 */
export function localObjects(dataDir: string) {
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(op: () => Promise<T>): Promise<T> => {
    const turn = queue.then(op, op);
    queue = turn.catch(() => undefined);
    return turn;
  };
  const pathOf = (key: string): string => join(dataDir, key);
  const temporary = async (key: string, bytes: Buffer | string): Promise<{ target: string; tmp: string }> => {
    const target = pathOf(key);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    const tmp = `${target}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(tmp, bytes, { mode: 0o600, flag: "wx" });
    return { target, tmp };
  };
  const read = async (key: string): Promise<LocalObject | undefined> => {
    try {
      const bytes = await readFile(pathOf(key));
      return { bytes, etag: etagOf(bytes) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  const unlinkMissingOk = async (key: string): Promise<boolean> => {
    try {
      await unlink(pathOf(key));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  };

  /** Writes `bytes` to a temporary file and renames it over the object, so no reader sees half of it. */
  const replace = async (key: string, bytes: Buffer | string): Promise<void> => {
    const { target, tmp } = await temporary(key, bytes);
    try {
      await rename(tmp, target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  };

  return {
    /** The file an object is kept in. */
    pathOf,
    read,
    /** Stores (or replaces) an object. */
    put: (key: string, bytes: Buffer | string): Promise<void> => serialised(() => replace(key, bytes)),
    /** Stores an object unless the key exists: its ETag, or undefined when it exists. */
    putIfAbsent: (key: string, bytes: Buffer | string): Promise<string | undefined> =>
      serialised(async () => {
        const { target, tmp } = await temporary(key, bytes);
        try {
          await link(tmp, target);
          return etagOf(bytes);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
          throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      }),
    /** Replaces an object only if it is still version `etag`: the new ETag, or why nothing was written. */
    putIfMatch: (key: string, etag: string, bytes: Buffer | string): Promise<ConditionalReplace> =>
      serialised(async () => {
        const current = await read(key);
        if (current === undefined) return "absent";
        if (current.etag !== etag) return "changed";
        await replace(key, bytes);
        return { etag: etagOf(bytes) };
      }),
    /** Deletes an object; a missing one is not an error. */
    remove: (key: string): Promise<void> => serialised(async () => void (await unlinkMissingOk(key))),
    /** Deletes an object only if it is still version `etag`. */
    deleteIfMatch: (key: string, etag: string): Promise<ConditionalDelete> =>
      serialised(async () => {
        const current = await read(key);
        if (current === undefined) return "absent";
        if (current.etag !== etag) return "changed";
        return (await unlinkMissingOk(key)) ? "removed" : "absent";
      }),
  };
}
