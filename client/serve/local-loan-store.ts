import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { LOANS_PREFIX, loanKey, returnMarkerKey, type LoanStore } from "../../lambda/src/loan-store";
import { localObjects } from "./local-objects";

/**
 * The handler's {@link LoanStore} on the local disk: the same keys the cloud uses in the device
 * bucket, as files under the data folder (`<data>/adept/loans/<id>.xml`), so loans survive restarts.
 * Conditional writes and deletes follow S3's rules, as the S3 store's do (see {@link localObjects});
 * "last modified" is the file's mtime.
 */
export function localLoanStore(dataDir: string): LoanStore & { readonly dir: string } {
  const objects = localObjects(dataDir);
  const dir = join(dataDir, LOANS_PREFIX);

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
      const found = await objects.read(loanKey(id));
      return found && { id, xml: found.bytes.toString("utf8"), etag: found.etag };
    },
    put: (id, xml) => objects.put(loanKey(id), xml),
    removeIfUnchanged: (id, etag) => objects.deleteIfMatch(loanKey(id), etag),
    createMarker: (id, body) => objects.putIfAbsent(returnMarkerKey(id), body),
    async readMarker(id) {
      const found = await objects.read(returnMarkerKey(id));
      return found && { body: found.bytes.toString("utf8"), etag: found.etag };
    },
    removeMarker: (id, etag) => objects.deleteIfMatch(returnMarkerKey(id), etag),
  };
}
