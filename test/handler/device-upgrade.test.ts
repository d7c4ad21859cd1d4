// Devices activated by libgourou 0.8.7 name its http:// activation server in activation.xml, and the
// 0.8.9 tools keep using the stored URL for that device (lambda/src/device-upgrade.ts says where in
// libgourou). The handler moves a stored device to https once: backup first, then a conditional
// replace, against a local S3-protocol server with S3's conditional-request rules (harness.ts).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../../lambda/src/handler";
import { testHandler } from "../support/test-handler";
import { loadConfig } from "../../lambda/src/config";
import { DEVICE_OBJECT_KEY, deviceBackupKey } from "../../lambda/src/contract";
import { DEVICE_FILES, DeviceManager, deviceStore, encodeDevice, type DeviceFiles, type DeviceStore } from "../../lambda/src/device";
import { ACTIVATION_SERVER, LEGACY_ACTIVATION_SERVER, upgradeActivationServer } from "../../lambda/src/device-upgrade";
import type { Logger } from "../../lambda/src/log";
import { s3Objects, type ObjectStore } from "../../lambda/src/object-store";
import { DEVICE_BUCKET, TOOLS_DIR, fakeContext, handlerEnv, makeAcsm, standinEnv, startFakeDistributor, startLocalS3, testEgress, urlEvent, type LocalS3 } from "./harness";

let s3: LocalS3;
let objects: ObjectStore;
let store: DeviceStore;
const savedEnv = { ...process.env };
const scratch: string[] = [];
const warnings: string[] = [];
const log: Logger = { info: () => undefined, warn: (m) => void warnings.push(m), error: () => undefined };

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

/** A device as the stand-in's adept_activate writes it, then with the activation server 0.8.7 would have recorded. */
async function activatedBy087(): Promise<DeviceFiles> {
  const manager = new DeviceManager(memoryStore(), TOOLS_DIR, tempDir("knock-activate-"));
  const dir = await manager.get(log, () => 60_000, { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: tempDir("knock-adept-state-") });
  const files = Object.fromEntries(DEVICE_FILES.map((name) => [name, readFileSync(join(dir, name))])) as DeviceFiles;
  const activation = files["activation.xml"].toString("utf8");
  expect(activation).toContain(`<adept:activationURL>${ACTIVATION_SERVER}</adept:activationURL>`);
  // 0.8.7's user.cpp recorded its own ACS_SERVER here; the other URLs come from Adobe's answers.
  const as087 = activation.replace(`<adept:activationURL>${ACTIVATION_SERVER}</adept:activationURL>`, `<adept:activationURL>${LEGACY_ACTIVATION_SERVER}</adept:activationURL>`);
  return { ...files, "activation.xml": Buffer.from(as087) };
}

/** An in-memory store for making the fixture device only (the tests below use S3). */
function memoryStore(): DeviceStore {
  let files: DeviceFiles | undefined;
  return {
    load: async () => files,
    loadVersioned: async () => files && { files, etag: '"m"', document: "" },
    storeIfAbsent: async (f) => (files === undefined ? ((files = f), '"m"') : undefined),
    remove: async () => void (files = undefined),
    removeIfUnchanged: async () => "absent",
    replaceIfUnchanged: async () => "absent",
    keepBackup: async () => undefined,
  };
}

async function storedDocument(key = DEVICE_OBJECT_KEY): Promise<string | undefined> {
  return (await objects.get(key))?.body.toString("utf8");
}

/** Stores `document` as the device, whatever is stored now (as another container's write would). */
async function storeDocument(document: string): Promise<void> {
  await store.remove();
  expect(await objects.putIfAbsent(DEVICE_OBJECT_KEY, document, "application/json")).not.toBe("exists");
}

const activationOf = (dir: string) => readFileSync(join(dir, "activation.xml"), "utf8");

beforeAll(async () => {
  s3 = await startLocalS3();
  Object.assign(process.env, handlerEnv(s3));
  objects = s3Objects(createS3Client(loadConfig()), DEVICE_BUCKET);
  store = deviceStore(objects);
}, 60_000);

afterAll(async () => {
  await s3.close();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

afterEach(async () => {
  await store.remove();
  warnings.length = 0;
});

describe("upgradeActivationServer", () => {
  it("moves only the activationURL element from 0.8.7's http:// server to https://", async () => {
    const old = await activatedBy087();
    const moved = upgradeActivationServer(old)!;
    expect(moved["activation.xml"].toString("utf8")).toBe(old["activation.xml"].toString("utf8").replace(
      `<adept:activationURL>${LEGACY_ACTIVATION_SERVER}</adept:activationURL>`,
      `<adept:activationURL>${ACTIVATION_SERVER}</adept:activationURL>`,
    ));
    expect(moved["device.xml"]).toBe(old["device.xml"]);
    expect(moved.devicesalt).toBe(old.devicesalt);
    expect(upgradeActivationServer(moved)).toBeUndefined();
  }, 60_000);
});

describe("a stored device activated by libgourou 0.8.7", () => {
  it("is moved to the https:// activation server once, with the old document kept verbatim as a backup", async () => {
    // Prepare
    const oldDocument = encodeDevice(await activatedBy087(), new Date("2025-06-01T00:00:00Z"));
    await storeDocument(oldDocument);
    const oldEtag = (await store.loadVersioned())!.etag;

    // Act: a cold container reads the device.
    const dir = await new DeviceManager(store, TOOLS_DIR, tempDir("knock-container-")).get(log, () => 60_000);

    // Assess: the tools get https, the store holds https, and the old document is in the backup.
    expect(activationOf(dir)).toContain(`<adept:activationURL>${ACTIVATION_SERVER}</adept:activationURL>`);
    const stored = (await store.loadVersioned())!;
    expect(stored.files["activation.xml"].toString("utf8")).toContain(`<adept:activationURL>${ACTIVATION_SERVER}</adept:activationURL>`);
    expect(stored.files["activation.xml"].toString("utf8")).not.toContain(LEGACY_ACTIVATION_SERVER);
    expect(await storedDocument(deviceBackupKey(oldEtag))).toBe(oldDocument);
    expect(warnings).toContain("the stored device names libgourou 0.8.7's http:// activation server; moving it to https://");

    // A later cold start finds nothing to move.
    warnings.length = 0;
    const etagAfter = stored.etag;
    await new DeviceManager(store, TOOLS_DIR, tempDir("knock-container-")).get(log, () => 60_000);
    expect(warnings).toEqual([]);
    expect((await store.loadVersioned())!.etag).toBe(etagAfter);
  }, 120_000);

  it("is moved by one of two cold starts at once; both end on the same stored version", async () => {
    const oldDocument = encodeDevice(await activatedBy087(), new Date("2025-06-01T00:00:00Z"));
    await storeDocument(oldDocument);
    const oldEtag = (await store.loadVersioned())!.etag;

    const dirs = await Promise.all([0, 1].map(() => new DeviceManager(store, TOOLS_DIR, tempDir("knock-container-")).get(log, () => 60_000)));

    expect(dirs.map(activationOf)).toEqual([activationOf(dirs[1]), activationOf(dirs[1])]);
    expect(activationOf(dirs[0])).toContain(ACTIVATION_SERVER);
    expect((await store.loadVersioned())!.files["activation.xml"].toString("utf8")).toBe(activationOf(dirs[0]));
    expect(await storedDocument(deviceBackupKey(oldEtag))).toBe(oldDocument);
  }, 120_000);

  it("never overwrites a device that changed after it was read", async () => {
    // Prepare: while the move is under way (after the backup), another container stores a new device.
    const oldDocument = encodeDevice(await activatedBy087(), new Date("2025-06-01T00:00:00Z"));
    await storeDocument(oldDocument);
    const newer = encodeDevice(upgradeActivationServer(await activatedBy087())!, new Date("2026-12-01T00:00:00Z"));
    const racing: DeviceStore = {
      ...store,
      async keepBackup(device) {
        await store.keepBackup(device);
        await storeDocument(newer);
      },
    };

    // Act
    const dir = await new DeviceManager(racing, TOOLS_DIR, tempDir("knock-container-")).get(log, () => 60_000);

    // Assess: the other container's device stands, and this one uses it.
    expect(await storedDocument()).toBe(newer);
    expect(activationOf(dir)).toBe(Buffer.from(JSON.parse(newer).files["activation.xml"], "base64").toString("utf8"));
  }, 120_000);

  it("is still used with https:// in this container when the store refuses the write, and the stored one is left as it was", async () => {
    const oldDocument = encodeDevice(await activatedBy087(), new Date("2025-06-01T00:00:00Z"));
    await storeDocument(oldDocument);
    const readOnly: DeviceStore = {
      ...store,
      async keepBackup() {
        throw Object.assign(new Error("Access Denied"), { name: "AccessDenied" });
      },
    };

    const dir = await new DeviceManager(readOnly, TOOLS_DIR, tempDir("knock-container-")).get(log, () => 60_000);

    expect(activationOf(dir)).toContain(ACTIVATION_SERVER);
    expect(await storedDocument()).toBe(oldDocument);
    expect(warnings).toContain("could not store the moved device; using it in this container only");
  }, 120_000);
});

describe("converting with a stored device activated by libgourou 0.8.7", () => {
  it("reaches Adobe's activation server over https once the device is moved (0.8.9's tools use the stored URL)", async () => {
    // Prepare: the old device in the bucket, the handler's egress proxy in front of a fake distributor.
    await storeDocument(encodeDevice(await activatedBy087(), new Date("2025-06-01T00:00:00Z")));
    const distributor = await startFakeDistributor();
    const lines: string[] = [];
    try {
      const handle = testHandler({
        config: loadConfig(), tmpRoot: tempDir("knock-container-"), egress: testEgress(distributor),
        toolEnv: standinEnv, logSink: (line) => lines.push(line),
      });

      // Act
      const res = (await handle(urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm({ title: "Old Device Book" }) })), fakeContext())) as { statusCode: number; body: string };

      // Assess: converted, and every connection to Adobe's server went to 443 (https), none to 80.
      expect(res.statusCode, res.body).toBe(200);
      const toAdobe = lines.map((l) => JSON.parse(l) as { message?: string; host?: string; port?: number })
        .filter((l) => l.message === "egress" && l.host === "adeactivate.adobe.com");
      expect(toAdobe.length).toBeGreaterThan(0);
      expect(toAdobe.map((l) => l.port)).toEqual(toAdobe.map(() => 443));
    } finally {
      await distributor.close();
    }
  }, 120_000);
});
