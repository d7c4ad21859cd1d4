import { randomBytes } from "node:crypto";
import { link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LOANS_PREFIX, loanKey, returnMarkerKey, type ConditionalDelete, type LoanStore } from "../../lambda/src/loan-store";
import { etagOf } from "./local-device-store";

/**
 * The handler's {@link LoanStore} on the local disk: the same keys the cloud uses in the device
 * bucket, as files under the data folder (`<data>/adept/loans/<id>.xml`), so loans survive restarts.
 *
 * It follows S3's rules for the requests the handler makes (Amazon S3 User Guide, "Conditional
 * requests"): the version is the ETag, the quoted MD5 of the bytes as for a single-part PUT; a plain
 * PUT replaces the object; a PUT with `If-None-Match: *` fails when the key exists (S3: 412; here
 * `createMarker` returns undefined, as the S3 store does); a DELETE with `If-Match: <ETag>` finds
 * "absent" (S3: 404 NoSuchKey) or "changed" (S3: 412). "Last modified" is the file's mtime.
 *
 * Tokens are written to a temporary file and renamed (a crash never leaves half a token); markers
 * are linked into place, which unlike rename fails when the name exists. Conditional operations are
 * serialised in this process, as S3 serialises them per key; one `knock serve` owns a data folder.
 */
export function localLoanStore(dataDir: string): LoanStore & { readonly dir: string } {
  const dir = join(dataDir, LOANS_PREFIX);
  const path = (key: string): string => join(dataDir, key);
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(op: () => Promise<T>): Promise<T> => {
    const turn = queue.then(op, op);
    queue = turn.catch(() => undefined);
    return turn;
  };
  const read = async (file: string): Promise<Buffer | undefined> => {
    try {
      return await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  const deleteIfMatch = (file: string, etag: string): Promise<ConditionalDelete> =>
    serialised(async () => {
      const bytes = await read(file);
      if (bytes === undefined) return "absent";
      if (etagOf(bytes) !== etag) return "changed";
      try {
        await unlink(file);
        return "removed";
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
        throw err;
      }
    });
  const temporary = (file: string): string => `${file}.${randomBytes(6).toString("hex")}.tmp`;

  return {
    dir,
    async list() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
      const out = [];
      for (const name of names) {
        const id = /^([0-9a-f]{16})\.xml$/.exec(name)?.[1];
        if (id === undefined) continue;
        const info = await stat(join(dir, name)).catch(() => undefined);
        if (info?.isFile()) out.push({ id, storedAt: info.mtime });
      }
      return out;
    },
    async get(id) {
      const bytes = await read(path(loanKey(id)));
      return bytes && { id, xml: bytes.toString("utf8"), etag: etagOf(bytes) };
    },
    put(id, xml) {
      return serialised(async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const target = path(loanKey(id));
        const tmp = temporary(target);
        await writeFile(tmp, xml, { mode: 0o600, flag: "wx" });
        try {
          await rename(tmp, target);
        } catch (err) {
          await unlink(tmp).catch(() => undefined);
          throw err;
        }
      });
    },
    removeIfUnchanged: (id, etag) => deleteIfMatch(path(loanKey(id)), etag),
    createMarker(id, body) {
      return serialised(async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const target = path(returnMarkerKey(id));
        const tmp = temporary(target);
        await writeFile(tmp, body, { mode: 0o600, flag: "wx" });
        try {
          await link(tmp, target);
          return etagOf(body);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
          throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      });
    },
    async readMarker(id) {
      const bytes = await read(path(returnMarkerKey(id)));
      return bytes && { body: bytes.toString("utf8"), etag: etagOf(bytes) };
    },
    removeMarker: (id, etag) => deleteIfMatch(path(returnMarkerKey(id)), etag),
  };
}
