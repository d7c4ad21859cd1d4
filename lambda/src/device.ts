import { mkdir, mkdtemp, readFile, rm, writeFile, access } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DEVICE_OBJECT_KEY, deviceBackupKey } from "./contract";
import { runLibgourou } from "./libgourou";
import { ServiceError } from "./errors";
import type { Logger } from "./log";
import type { ConditionalDelete, ConditionalReplace, ObjectStore } from "./object-store";
import { upgradeActivationServer } from "./device-upgrade";
import { collectElementText, XmlRefusal, type XmlTag } from "./strict-xml";

/** The files `adept_activate` writes and every other tool reads through `-D DIR`. */
export const DEVICE_FILES = ["device.xml", "activation.xml", "devicesalt"] as const;

/** One Adobe device: file name → contents. */
export type DeviceFiles = Readonly<Record<(typeof DEVICE_FILES)[number], Buffer>>;

/** Format tag inside the stored document, so a future layout can be recognised. */
export const DEVICE_DOCUMENT_FORMAT = "knock-lambda/adept-device/v1";

/** The stored device and the version (S3 ETag) it was read at. */
export interface VersionedDevice {
  readonly files: DeviceFiles;
  readonly etag: string;
  /** The stored document as it was read, for a verbatim backup. */
  readonly document: string;
}

/** Persistence of the one shared device. */
export interface DeviceStore {
  /** The stored device, or undefined when none has been stored yet. */
  load(): Promise<DeviceFiles | undefined>;
  /** Like {@link load}, with the version the device was read at. */
  loadVersioned(): Promise<VersionedDevice | undefined>;
  /** Stores `files` unless a device already exists: its version, or undefined when another writer got there first. */
  storeIfAbsent(files: DeviceFiles): Promise<string | undefined>;
  /** Forgets the stored device unconditionally (operators, tests). */
  remove(): Promise<void>;
  /**
   * Forgets the stored device only if it is still version `etag`: "removed"; "changed" when another
   * device is stored now; "absent" when none is.
   */
  removeIfUnchanged(etag: string): Promise<ConditionalDelete>;
  /**
   * Replaces the stored device with `files` only if it is still version `etag`: the new version, or
   * "changed" / "absent" when another writer got there first.
   */
  replaceIfUnchanged(files: DeviceFiles, etag: string): Promise<ConditionalReplace>;
  /** Keeps `device.document` at {@link deviceBackupKey}; an existing backup of that version is kept as it is. */
  keepBackup(device: VersionedDevice): Promise<void>;
}

/**
 * How the stored device came to be: activated by this service (adept_activate -a) or imported by its
 * owner (`knock device import`). Documents written before imports existed carry no origin: activated.
 */
export type DeviceOrigin = "activated" | "imported";

/** Serialises a device to the stored JSON document (all three files in one object, written atomically). */
export function encodeDevice(files: DeviceFiles, now: Date, origin: DeviceOrigin = "activated"): string {
  return JSON.stringify({
    format: DEVICE_DOCUMENT_FORMAT,
    created_at: now.toISOString(),
    // Only an import says so: an activated device's document stays as it always was.
    ...(origin === "imported" ? { origin: "imported", imported_at: now.toISOString() } : {}),
    files: Object.fromEntries(DEVICE_FILES.map((name) => [name, files[name].toString("base64")])),
  });
}

/** Parses the stored JSON document; throws when it is not a complete device. */
export function decodeDevice(text: string): DeviceFiles {
  return readDeviceDocument(text).files;
}

/** The stored document with what it says about the device besides its files. */
export interface DeviceDocument {
  readonly files: DeviceFiles;
  /** When the document was written (`created_at`), when it says. */
  readonly createdAt?: Date;
  readonly origin: DeviceOrigin;
  /** When an imported device was imported. */
  readonly importedAt?: Date;
}

function dateField(value: unknown): Date | undefined {
  if (typeof value !== "string") return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : new Date(at);
}

/** Parses the stored JSON document, old (no origin) or new; throws when it is not a complete device. */
export function readDeviceDocument(text: string): DeviceDocument {
  const doc = JSON.parse(text) as { format?: unknown; files?: Record<string, unknown>; created_at?: unknown; origin?: unknown; imported_at?: unknown };
  if (doc.format !== DEVICE_DOCUMENT_FORMAT || typeof doc.files !== "object" || doc.files === null) {
    throw new Error(`stored device document is not in format ${DEVICE_DOCUMENT_FORMAT}`);
  }
  const files = doc.files;
  const out: Partial<Record<(typeof DEVICE_FILES)[number], Buffer>> = {};
  for (const name of DEVICE_FILES) {
    const value = files[name];
    if (typeof value !== "string" || value === "") throw new Error(`stored device document lacks ${name}`);
    out[name] = Buffer.from(value, "base64");
  }
  return {
    files: out as DeviceFiles,
    createdAt: dateField(doc.created_at),
    origin: doc.origin === "imported" ? "imported" : "activated",
    importedAt: dateField(doc.imported_at),
  };
}

/** libgourou's size of devicesalt (src/device.cpp, DEVICE_KEY_SIZE). */
export const DEVICE_KEY_SIZE = 16;

/** Largest device.xml / activation.xml accepted: real ones are a few KB. */
const MAX_DEVICE_XML = 256 * 1024;

const ADEPT_NS = "http://ns.adobe.com/adept";

/** A device file libgourou would refuse: which file, and what is wrong with it. */
export class DeviceFileProblem extends Error {
  constructor(readonly file: (typeof DEVICE_FILES)[number], problem: string) {
    super(`${file}: ${problem}`);
    this.name = "DeviceFileProblem";
  }
}

/** What the three files say about the device: public facts only, never key material. */
export interface DeviceSummary {
  /** device.xml's adept:deviceSerial. */
  readonly serial: string;
  /** device.xml's adept:fingerprint (public: libgourou's tools print it). */
  readonly fingerprint: string;
  /** activation.xml's device id (`<device>`), when present. */
  readonly deviceId: string;
  /** activation.xml's adept:user. */
  readonly user: string;
  /** True for an anonymous activation (`<adept:username method="anonymous">`). */
  readonly anonymous: boolean;
}

function readXmlFields<Name extends string>(
  file: "device.xml" | "activation.xml",
  bytes: Buffer,
  root: string,
  field: (tag: XmlTag) => Name | undefined,
  onTag?: (tag: XmlTag) => void,
): Map<Name, string> {
  if (bytes.length > MAX_DEVICE_XML) throw new DeviceFileProblem(file, `is ${bytes.length} bytes; a real one is a few KB`);
  try {
    return collectElementText(bytes.toString("utf8"), {
      namespaces: true,
      maxDepth: 32,
      rootProblem: (tag) => (tag.local === root && tag.uri === ADEPT_NS ? undefined : `its root element is <${tag.name}>, not ${root} in ${ADEPT_NS}`),
      field: (tag) => {
        onTag?.(tag);
        return field(tag);
      },
      tooDeep: "nests elements too deeply",
    });
  } catch (err) {
    if (err instanceof XmlRefusal) {
      throw new DeviceFileProblem(file, err.message);
    }
    throw new DeviceFileProblem(file, `is not well-formed XML (${err instanceof Error ? err.message : String(err)})`);
  }
}

/**
 * Checks libgourou's three device files the way the DRMProcessor constructor reads them
 * (src/libgourou.cpp): devicesalt is exactly 16 bytes (src/device.cpp parseDeviceKeyFile, else
 * 0x2003), device.xml is an adept:deviceInfo with deviceClass, deviceSerial, deviceName,
 * deviceType and fingerprint (parseDeviceFile, else 0x2002), activation.xml an activationInfo with
 * the user's credentials (src/user.cpp parseActivationFile, else 0x3001), and the two fingerprints
 * agree (0x1000 "User and device fingerprint does not match"). Throws {@link DeviceFileProblem}.
 */
export function checkDeviceFiles(files: DeviceFiles): DeviceSummary {
  const salt = files.devicesalt;
  if (salt.length !== DEVICE_KEY_SIZE) throw new DeviceFileProblem("devicesalt", `must be exactly ${DEVICE_KEY_SIZE} bytes, it is ${salt.length}`);

  const deviceFields = ["deviceClass", "deviceSerial", "deviceName", "deviceType", "fingerprint"] as const;
  type DeviceField = (typeof deviceFields)[number];
  const device = readXmlFields<DeviceField>("device.xml", files["device.xml"], "deviceInfo", (tag) =>
    tag.uri === ADEPT_NS && (deviceFields as readonly string[]).includes(tag.local ?? "") ? (tag.local as DeviceField) : undefined,
  );
  for (const name of deviceFields) {
    if (!device.get(name)) throw new DeviceFileProblem("device.xml", `lacks <adept:${name}>`);
  }

  const activationFields = ["pkcs12", "user", "device", "fingerprint", "privateLicenseKey", "authenticationCertificate", "username"] as const;
  type ActivationField = (typeof activationFields)[number];
  let anonymous = false;
  const activation = readXmlFields<ActivationField>(
    "activation.xml",
    files["activation.xml"],
    "activationInfo",
    (tag) => (tag.uri === ADEPT_NS && (activationFields as readonly string[]).includes(tag.local ?? "") ? (tag.local as ActivationField) : undefined),
    (tag) => {
      if (tag.local !== "username") return;
      const method: unknown = (tag.attributes as Record<string, unknown>)["method"];
      anonymous = (typeof method === "string" ? method : (method as { value?: unknown } | undefined)?.value) === "anonymous";
    },
  );
  for (const name of ["pkcs12", "user", "device", "fingerprint", "privateLicenseKey", "authenticationCertificate"] as const) {
    if (!activation.get(name)) {
      throw new DeviceFileProblem("activation.xml", `lacks <${name}>${name === "device" || name === "fingerprint" ? " (the device was never fully activated)" : ""}`);
    }
  }
  if (!activation.has("username")) throw new DeviceFileProblem("activation.xml", "lacks <adept:username>");
  if (activation.get("fingerprint") !== device.get("fingerprint")) {
    throw new DeviceFileProblem("activation.xml", "was made for another device: its fingerprint does not match device.xml's");
  }
  return {
    serial: device.get("deviceSerial")!,
    fingerprint: device.get("fingerprint")!,
    deviceId: activation.get("device")!,
    user: activation.get("user")!,
    anonymous,
  };
}

/** The stored document's content type. */
const DOCUMENT_TYPE = "application/json";

/**
 * {@link DeviceStore} on the device bucket's objects: one JSON document at {@link DEVICE_OBJECT_KEY},
 * created with a conditional write (`If-None-Match: *`) so concurrent cold starts agree on one
 * device, and its backups at {@link deviceBackupKey}.
 */
export function deviceStore(objects: ObjectStore, now: () => Date = () => new Date()): DeviceStore {
  const store: DeviceStore = {
    async load() {
      return (await store.loadVersioned())?.files;
    },
    async loadVersioned() {
      const found = await objects.get(DEVICE_OBJECT_KEY);
      if (found === undefined) return undefined;
      const document = found.body.toString("utf8");
      return { files: decodeDevice(document), etag: found.etag, document };
    },
    // "exists" means another cold start stored its device first; the caller loads the winner's.
    async storeIfAbsent(files) {
      const created = await objects.putIfAbsent(DEVICE_OBJECT_KEY, encodeDevice(files, now()), DOCUMENT_TYPE);
      return created === "exists" ? undefined : created.etag;
    },
    remove: () => objects.delete(DEVICE_OBJECT_KEY),
    removeIfUnchanged: (etag) => objects.deleteIfMatch(DEVICE_OBJECT_KEY, etag),
    replaceIfUnchanged: (files, etag) => objects.putIfMatch(DEVICE_OBJECT_KEY, etag, encodeDevice(files, now()), DOCUMENT_TYPE),
    async keepBackup(device) {
      // An existing backup of this version holds the same document: "exists" is fine.
      await objects.putIfAbsent(deviceBackupKey(device.etag), device.document, DOCUMENT_TYPE);
    },
  };
  return store;
}

async function writeDeviceDir(root: string, files: DeviceFiles): Promise<string> {
  const dir = await mkdtemp(join(root, "knock-device-"));
  for (const name of DEVICE_FILES) await writeFile(join(dir, name), files[name], { mode: 0o600 });
  return dir;
}

async function readDeviceDir(dir: string): Promise<DeviceFiles> {
  const entries = await Promise.all(DEVICE_FILES.map(async (name) => [name, await readFile(join(dir, name))] as const));
  return Object.fromEntries(entries) as DeviceFiles;
}

async function isComplete(dir: string): Promise<boolean> {
  try {
    await Promise.all(DEVICE_FILES.map((name) => access(join(dir, name))));
    return true;
  } catch {
    return false;
  }
}

/**
 * Provides the device directory the tools use. One device is shared by every container: it is
 * loaded from the store, or activated once and stored with a conditional write so concurrent cold
 * starts agree on the first one stored. A copy is cached under /tmp for warm invocations.
 */
export class DeviceManager {
  private cachedDir: string | undefined;
  /** Directory to delete with the cache (the activation's parent, or the cache dir itself). */
  private cacheOwner: string | undefined;
  /** Version of the stored device the cache holds. */
  private cachedEtag: string | undefined;
  /** The activation in flight in this process, shared by every request that finds no device. */
  private activation: Promise<string> | undefined;

  constructor(
    private readonly store: DeviceStore,
    private readonly toolsDir: string,
    /** Parent of the cached device (Lambda's /tmp). */
    private readonly cacheRoot: string,
  ) {}

  /** Returns a directory holding a complete device; `timeoutMs` bounds an activation if one is needed. */
  async get(log: Logger, timeoutMs: () => number, env?: NodeJS.ProcessEnv): Promise<string> {
    const existing = await this.current(log);
    if (existing !== undefined) return existing;
    // Concurrent requests in one process (knock serve; a Lambda container takes one at a time) that
    // find no device share one activation: the conditional write below makes them agree on one
    // stored device anyway, but every extra activation spends one of the distributor's device slots.
    this.activation ??= this.activateAndStore(log, timeoutMs, env).finally(() => {
      this.activation = undefined;
    });
    return this.activation;
  }

  private async activateAndStore(log: Logger, timeoutMs: () => number, env?: NodeJS.ProcessEnv): Promise<string> {
    // An activation that finished while this caller was still reading the store left its device here.
    if (this.cachedDir !== undefined && (await isComplete(this.cachedDir))) return this.cachedDir;
    const activated = await this.activate(log, timeoutMs(), env);
    const files = await readDeviceDir(activated);
    const etag = await this.store.storeIfAbsent(files);
    if (etag !== undefined) {
      log.info("new device activated and stored");
      return this.remember(activated, etag, dirname(activated));
    }
    // Another cold start stored its device first: use that one, so all containers share one device.
    await rm(dirname(activated), { recursive: true, force: true });
    const winner = await this.store.loadVersioned();
    if (winner === undefined) {
      throw new ServiceError(500, "DeviceUnavailable", "The shared Adobe device changed during activation; please retry.");
    }
    log.info("device stored concurrently by another invocation; using it");
    return this.remember(await writeDeviceDir(this.cacheRoot, winner.files), winner.etag);
  }

  /**
   * The directory of the stored device, or undefined when none is stored — never activating one
   * (returning a loan needs the device that borrowed it, not a new one).
   */
  async current(log: Logger): Promise<string | undefined> {
    if (this.cachedDir !== undefined && (await isComplete(this.cachedDir))) return this.cachedDir;
    await mkdir(this.cacheRoot, { recursive: true });
    const loaded = await this.store.loadVersioned();
    if (loaded === undefined) return undefined;
    log.info("device loaded from store");
    const stored = await this.upgradeStored(loaded, log);
    return this.remember(await writeDeviceDir(this.cacheRoot, stored.files), stored.etag);
  }

  /**
   * A device activated by libgourou 0.8.7 still names 0.8.7's http:// activation server, which the
   * 0.8.9 tools keep using for it (see device-upgrade.ts). It is moved to https once, for every
   * container: the old document is first copied to a backup, then replaced only if it is still the
   * version read (If-Match), so a device that changed in between is never overwritten. If the store
   * cannot be written, this container still uses the moved copy and the next cold start tries again.
   */
  private async upgradeStored(stored: VersionedDevice, log: Logger): Promise<Pick<VersionedDevice, "files" | "etag">> {
    const files = upgradeActivationServer(stored.files);
    if (files === undefined) return stored;
    log.warn("the stored device names libgourou 0.8.7's http:// activation server; moving it to https://");
    try {
      await this.store.keepBackup(stored);
      const outcome = await this.store.replaceIfUnchanged(files, stored.etag);
      if (typeof outcome === "object") {
        log.info("stored device moved to the https:// activation server; the old one is kept as a backup", { backup: deviceBackupKey(stored.etag) });
        return { files, etag: outcome.etag };
      }
      // Another container moved (or replaced) it first: use what is stored now.
      const current = await this.store.loadVersioned();
      if (current === undefined) return { files, etag: stored.etag };
      return { files: upgradeActivationServer(current.files) ?? current.files, etag: current.etag };
    } catch (err) {
      log.warn("could not store the moved device; using it in this container only", { error: err instanceof Error ? err.message : String(err) });
      return { files, etag: stored.etag };
    }
  }

  /**
   * Replaces the device the server stopped accepting (E_ADEPT_REQUEST_EXPIRED) and returns the
   * directory of the device to retry with. Several warm containers can hit this at once: only the
   * one whose conditional delete (If-Match: the failed device's ETag) succeeds activates a new
   * device; the others adopt the stored replacement instead of deleting it and activating a third.
   */
  async replaceFailed(log: Logger, timeoutMs: () => number, env?: NodeJS.ProcessEnv): Promise<string> {
    const failed = this.cachedEtag;
    await this.dropCache();
    if (failed === undefined) return this.get(log, timeoutMs, env);
    const outcome = await this.store.removeIfUnchanged(failed);
    if (outcome === "removed") log.warn("removed the stored device the server no longer accepts; activating a new one");
    else if (outcome === "changed") log.info("the stored device was already replaced by another invocation; using it");
    else {
      // Another invocation removed it and is activating the replacement: wait for that one.
      log.info("the stored device is being replaced by another invocation; waiting for it");
      const deadline = Date.now() + Math.min(30_000, Math.max(0, timeoutMs() / 2));
      while (Date.now() < deadline) {
        const stored = await this.store.loadVersioned();
        if (stored !== undefined) {
          await mkdir(this.cacheRoot, { recursive: true });
          return this.remember(await writeDeviceDir(this.cacheRoot, stored.files), stored.etag);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return this.get(log, timeoutMs, env);
  }

  /** Drops the /tmp copy only (the stored device stays). */
  async dropCache(): Promise<void> {
    if (this.cacheOwner !== undefined) await rm(this.cacheOwner, { recursive: true, force: true });
    this.cachedDir = undefined;
    this.cacheOwner = undefined;
    this.cachedEtag = undefined;
  }

  private remember(dir: string, etag: string, owner: string = dir): string {
    this.cachedDir = dir;
    this.cacheOwner = owner;
    this.cachedEtag = etag;
    return dir;
  }

  private async activate(log: Logger, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<string> {
    // adept_activate must get a directory that does not exist yet (it would prompt forever), and a
    // failed activation may leave a partial one: a fresh parent per attempt, removed on failure.
    const parent = await mkdtemp(join(this.cacheRoot, "knock-activate-"));
    const dir = join(parent, "device");
    try {
      log.info("activating a new Adobe device");
      await runLibgourou(this.toolsDir, "adept_activate", ["-a", "-r", "-O", dir], timeoutMs, env);
      if (!(await isComplete(dir))) {
        throw new ServiceError(500, "ActivationFailed", "adept_activate reported success but wrote no complete device.");
      }
      return dir;
    } catch (err) {
      await rm(parent, { recursive: true, force: true });
      throw err;
    }
  }
}
