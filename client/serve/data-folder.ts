import { mkdir, readFile, rmdir, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { OUTPUT_PREFIX } from "../../lambda/src/public";
import { fileObjects, type FileObjects, type LinkMaker } from "./file-objects";

/**
 * The folder under the data folder that stands for the output bucket. The device bucket's keys are
 * paths right under the data folder (`<data>/adept/device.json`, `<data>/adept/loans/<id>.xml`), the
 * output bucket's under this one (`<data>/books/converted/<request>/<file>`): the layout every
 * `knock serve` has kept, so an existing data folder keeps its device, loans and books.
 */
export const BOOKS_FOLDER = "books";

/** The data folder's two object stores, one per bucket of a deployment. */
export interface DataFolderObjects {
  /** The device bucket's objects: the device, its backups, the loan tokens. */
  readonly device: FileObjects;
  /** The output bucket's objects: the converted books, handed out through `links`. */
  readonly books: FileObjects;
}

/** The object stores of the data folder `dataDir` (see {@link BOOKS_FOLDER}). */
export function dataFolderObjects(dataDir: string, links?: LinkMaker, booksLifetimeMs?: number): DataFolderObjects {
  return {
    device: fileObjects(dataDir),
    books: fileObjects(join(dataDir, BOOKS_FOLDER), { links, ...(booksLifetimeMs === undefined ? {} : { lifetimeMs: booksLifetimeMs }) }),
  };
}

/**
 * Claims `dataDir` for one `knock serve` process (a lock file with its pid, created exclusively), so
 * the in-process serialisation of the file object stores is enough. A lock left by a process that
 * is gone is taken over.
 */
export async function lockDataFolder(dataDir: string): Promise<() => Promise<void>> {
  const lock = join(dataDir, "serve.lock");
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: "wx", mode: 0o600 });
      return () => unlink(lock).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number((await readFile(lock, "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw Object.assign(new Error(`another knock serve (pid ${pid}) uses ${dataDir}`), { code: "EDATALOCKED", pid });
      }
      await unlink(lock).catch(() => undefined);
    }
  }
  throw Object.assign(new Error(`cannot lock ${dataDir}`), { code: "EDATALOCKED" });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the books no link can reach any more — older than the links' lifetime — and the request
 * folders they leave empty; the local counterpart of the output bucket's expiry rule, so a server
 * that runs for months does not keep every book it ever converted. Books are judged by their last
 * change: a book is written just before its link is signed. Returns how many books it removed.
 */
export async function pruneExpiredBooks(books: FileObjects, maxAgeMs: number, now: Date = new Date()): Promise<number> {
  let listed;
  try {
    listed = await books.list(OUTPUT_PREFIX);
  } catch {
    return 0; // unreadable: the next pass tries again
  }
  let removed = 0;
  for (const { key, lastModified } of listed) {
    if (now.getTime() - lastModified.getTime() <= maxAgeMs) continue;
    try {
      await books.delete(key);
      removed++;
    } catch {
      continue; // unreadable: the next pass tries again
    }
    await rmdir(dirname(books.pathOf(key))).catch(() => undefined); // only succeeds when empty
  }
  return removed;
}
