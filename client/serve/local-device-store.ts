import { createHash, randomBytes } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DEVICE_OBJECT_KEY, decodeDevice, encodeDevice, type DeviceStore } from "../../lambda/src/device";

/**
 * The handler's {@link DeviceStore} on the local disk: the same JSON document the cloud keeps in
 * the device bucket, at `<data>/<DEVICE_OBJECT_KEY>`, so the Adobe device survives restarts.
 *
 * It follows S3's rules for the requests the handler makes (Amazon S3 User Guide, "Conditional
 * requests" and "conditional deletes"): the version is the ETag, the quoted MD5 of the document as
 * for a single-part PUT; a PUT with `If-None-Match: *` fails when the key exists (S3: 412
 * PreconditionFailed; here `storeIfAbsent` returns undefined, as the S3 store does on 412); a
 * DELETE with `If-Match: <ETag>` answers 404 NoSuchKey when the key is absent ("absent") and 412
 * when the ETag differs ("changed"); a plain DELETE of a missing key succeeds (S3: 204).
 *
 * A crash mid-write never leaves a half-written device: the document is written to a temporary
 * file and then linked into place, which is atomic and, unlike rename, fails when the name exists.
 * Conditional operations are serialised in this process, as S3 serialises them per key; one
 * `knock serve` owns a data folder at a time (see {@link lockDataFolder}).
 */
export function localDeviceStore(dataDir: string, now: () => Date = () => new Date()): DeviceStore & { readonly path: string } {
  const path = join(dataDir, DEVICE_OBJECT_KEY);
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(op: () => Promise<T>): Promise<T> => {
    const turn = queue.then(op, op);
    queue = turn.catch(() => undefined);
    return turn;
  };
  const readCurrent = async (): Promise<Buffer | undefined> => {
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };

  const store: DeviceStore & { readonly path: string } = {
    path,
    async load() {
      return (await store.loadVersioned())?.files;
    },
    async loadVersioned() {
      const bytes = await readCurrent();
      return bytes === undefined ? undefined : { files: decodeDevice(bytes.toString("utf8")), etag: etagOf(bytes) };
    },
    storeIfAbsent(files) {
      return serialised(async () => {
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        const document = Buffer.from(encodeDevice(files, now()));
        const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
        await writeFile(tmp, document, { mode: 0o600, flag: "wx" });
        try {
          await link(tmp, path);
          return etagOf(document);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
          throw err;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      });
    },
    remove() {
      return serialised(async () => {
        await unlink(path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "ENOENT") throw err;
        });
      });
    },
    removeIfUnchanged(etag) {
      return serialised(async () => {
        const bytes = await readCurrent();
        if (bytes === undefined) return "absent" as const;
        if (etagOf(bytes) !== etag) return "changed" as const;
        try {
          await unlink(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent" as const;
          throw err;
        }
        return "removed" as const;
      });
    },
  };
  return store;
}

/**
 * Claims `dataDir` for one `knock serve` process (a lock file with its pid, created exclusively), so
 * the in-process serialisation above is enough. A lock left by a process that is gone is taken over.
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

/** S3's ETag of a single-part object: the quoted MD5 of its bytes. */
export function etagOf(bytes: Buffer | string): string {
  return `"${createHash("md5").update(bytes).digest("hex")}"`;
}
