import { mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DEVICE_OBJECT_KEY, decodeDevice, deviceBackupKey, encodeDevice, type DeviceStore } from "../../lambda/src/device";
import { localObjects } from "./local-objects";

/**
 * The handler's {@link DeviceStore} on the local disk: the same JSON document the cloud keeps in
 * the device bucket, at `<data>/<DEVICE_OBJECT_KEY>`, so the Adobe device survives restarts. The
 * conditional write and delete follow S3's rules, as the S3 store's do (see {@link localObjects}),
 * and a crash mid-write never leaves a half-written device.
 */
export function localDeviceStore(dataDir: string, now: () => Date = () => new Date()): DeviceStore & { readonly path: string } {
  const objects = localObjects(dataDir);
  const store: DeviceStore & { readonly path: string } = {
    path: objects.pathOf(DEVICE_OBJECT_KEY),
    async load() {
      return (await store.loadVersioned())?.files;
    },
    async loadVersioned() {
      const found = await objects.read(DEVICE_OBJECT_KEY);
      if (found === undefined) return undefined;
      const document = found.bytes.toString("utf8");
      return { files: decodeDevice(document), etag: found.etag, document };
    },
    storeIfAbsent: (files) => objects.putIfAbsent(DEVICE_OBJECT_KEY, encodeDevice(files, now())),
    remove: () => objects.remove(DEVICE_OBJECT_KEY),
    removeIfUnchanged: (etag) => objects.deleteIfMatch(DEVICE_OBJECT_KEY, etag),
    replaceIfUnchanged: (files, etag) => objects.putIfMatch(DEVICE_OBJECT_KEY, etag, encodeDevice(files, now())),
    async keepBackup(device) {
      await objects.putIfAbsent(deviceBackupKey(device.etag), device.document);
    },
  };
  return store;
}

/**
 * Claims `dataDir` for one `knock serve` process (a lock file with its pid, created exclusively), so
 * the in-process serialisation of {@link localObjects} is enough. A lock left by a process that is gone is taken over.
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
