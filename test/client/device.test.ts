// `knock device`: status without key material, export/import in libgourou's own layout (a zip of
// device.xml, activation.xml, devicesalt), strict checks on imports, and the handler's conditional rules.
import { existsSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32, deflateRawSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { DEVICE_OBJECT_KEY } from "../../lambda/src/contract";
import { checkDeviceFiles, decodeDevice, readDeviceDocument, encodeDevice, type DeviceFiles } from "../../lambda/src/device";
import { fileObjects } from "../../client/serve/file-objects";
import { readDeviceZip, writeDeviceZip } from "../../client/lib/device-archive";
import { importDevice } from "../../client/commands/device";
import { makeAcsm } from "../handler/harness";
import { cleanup, knock, scratchDir, startStandinService } from "./helpers";

const scratch: string[] = [];
afterAll(() => cleanup(scratch));

function activations(stateDir: string): number {
  const file = join(stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
}

/** A device folder made by a real activation of the stand-in, through knock serve. */
async function activatedDataFolder(stateDir: string): Promise<string> {
  const dataDir = scratchDir("knock-device-data-", scratch);
  const service = await startStandinService({ dataDir, stateDir });
  const answer = await fetch(service.url, { method: "POST", body: JSON.stringify({ acsm_content: makeAcsm({ title: "One" }) }), headers: { "content-type": "application/json" } });
  await service.stop();
  expect(answer.status).toBe(200);
  return dataDir;
}

function storedFiles(dataDir: string): DeviceFiles {
  return decodeDevice(readFileSync(join(dataDir, DEVICE_OBJECT_KEY), "utf8"));
}

/** A zip with the given raw entries (deflated), optionally with Unix modes. */
function zipOf(entries: { name: string; data: Buffer; mode?: number; size?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const packed = deflateRawSync(e.data);
    const name = Buffer.from(e.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc32(e.data), 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(e.size ?? e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc32(e.data), 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(e.size ?? e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    centrals.push(central, name);
    offset += 30 + name.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const entriesOf = (files: DeviceFiles, folder = "") => (["device.xml", "activation.xml", "devicesalt"] as const).map((n) => ({ name: folder + n, data: files[n] }));

describe("knock device", () => {
  const stateDir = scratchDir("knock-device-state-", scratch);
  let source: string;
  let device: DeviceFiles;

  it("export → import into a fresh data folder converts with the same device and no new activation", async () => {
    source = await activatedDataFolder(stateDir);
    device = storedFiles(source);
    expect(activations(stateDir)).toBe(1);

    const status = await knock(["device", "--data", source]);
    expect(status.code).toBe(0);
    const summary = checkDeviceFiles(device);
    expect(status.stdout).toContain(`serial       ${summary.serial}`);
    expect(status.stdout).toContain(`fingerprint  ${summary.fingerprint}`);
    expect(status.stdout).toContain("account      anonymous");
    expect(status.stdout).toContain("origin       activated by the service");
    expect(status.stdout).toContain("backups      none");
    // No key material.
    expect(status.stdout).not.toContain(device.devicesalt.toString("base64"));
    expect(status.stdout).not.toMatch(/pkcs12|privateLicenseKey/i);

    const zip = join(scratchDir("knock-device-zip-", scratch), "device.zip");
    const exported = await knock(["device", "export", zip, "--data", source]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(await readDeviceZip(readFileSync(zip))).toEqual(device);
    expect((await knock(["device", "export", zip, "--data", source])).code).toBe(1); // exists: not overwritten

    const target = scratchDir("knock-device-target-", scratch);
    const imported = await knock(["device", "import", zip, "--data", target]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain(`Imported device ${summary.serial}`);
    const doc = readDeviceDocument(readFileSync(join(target, DEVICE_OBJECT_KEY), "utf8"));
    expect(doc.origin).toBe("imported");
    expect(doc.files).toEqual(device);
    const json = JSON.parse((await knock(["device", "--data", target, "--json"])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ stored: true, serial: summary.serial, origin: "imported", backups: 0 });

    const service = await startStandinService({ dataDir: target, stateDir });
    const answer = await fetch(service.url, { method: "POST", body: JSON.stringify({ acsm_content: makeAcsm({ title: "Two" }) }), headers: { "content-type": "application/json" } });
    await service.stop();
    expect(answer.status).toBe(200);
    expect(activations(stateDir)).toBe(1);
    expect(service.logs.some((l) => l.includes("device loaded from store"))).toBe(true);
    expect(storedFiles(target)).toEqual(device);
  }, 60_000);

  it("replacing asks first (--yes for scripts) and keeps the old device as a backup", async () => {
    const other = storedFiles(await activatedDataFolder(stateDir));
    const folder = scratchDir("knock-device-dir-", scratch);
    for (const [name, data] of Object.entries(other)) writeFileSync(join(folder, name), data);
    const before = readFileSync(join(source, DEVICE_OBJECT_KEY), "utf8");
    const refused = await knock(["device", "import", folder, "--data", source]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("pass --yes");
    expect(readFileSync(join(source, DEVICE_OBJECT_KEY), "utf8")).toBe(before);
    const replaced = await knock(["device", "import", folder, "--data", source, "--yes"]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain("the old one is kept as adept/backups/device-");
    expect(storedFiles(source)).toEqual(other);
    const status = await knock(["device", "--data", source]);
    expect(status.stdout).toContain("backups      1");
  }, 60_000);

  describe("refuses corrupt imports, naming the file and the problem, and replaces nothing", () => {
    const cases: [string, () => Buffer, RegExp][] = [
      ["a short devicesalt", () => zipOf(entriesOf({ ...device, devicesalt: Buffer.alloc(15) })), /devicesalt: must be exactly 16 bytes, it is 15/],
      ["device.xml that is not XML", () => zipOf(entriesOf({ ...device, "device.xml": Buffer.from("<adept:deviceInfo") })), /device\.xml: is not well-formed XML/],
      ["device.xml with a DOCTYPE", () => zipOf(entriesOf({ ...device, "device.xml": Buffer.from('<!DOCTYPE x [<!ENTITY a "b">]><x/>') })), /device\.xml: must not contain a DOCTYPE/],
      [
        "mismatched fingerprints",
        () => zipOf(entriesOf({ ...device, "device.xml": Buffer.from(device["device.xml"].toString().replace(/<adept:fingerprint>[^<]+/, "<adept:fingerprint>AAAA")) })),
        /activation\.xml: was made for another device/,
      ],
      ["a ../ path", () => zipOf([...entriesOf(device), { name: "../evil", data: Buffer.from("x") }]), /outside its folder \(\.\.\): "\.\.\/evil"/],
      ["an absolute path", () => zipOf([...entriesOf(device), { name: "/etc/evil", data: Buffer.from("x") }]), /absolute/],
      ["a symlink", () => zipOf([...entriesOf(device).slice(0, 2), { name: "devicesalt", data: Buffer.from("/etc/passwd"), mode: 0o120777 }]), /symbolic link: "devicesalt"/],
      ["a duplicate", () => zipOf([...entriesOf(device), { name: "devicesalt", data: device.devicesalt }]), /holds "devicesalt" twice/],
      ["a zip bomb", () => zipOf([...entriesOf(device).slice(0, 2), { name: "devicesalt", data: Buffer.alloc(50 * 1024 * 1024), size: 16 }]), /inflates to more than 1048576 bytes/],
      ["a zip missing a file", () => zipOf(entriesOf(device).slice(0, 2)), /holds no devicesalt/],
      ["not a zip", () => Buffer.from("hello"), /not a zip/],
    ];
    for (const [what, make, message] of cases) {
      it(what, async () => {
        const dir = scratchDir("knock-device-bad-", scratch);
        const zip = join(dir, "bad.zip");
        writeFileSync(zip, make());
        const before = readFileSync(join(source, DEVICE_OBJECT_KEY), "utf8");
        const run = await knock(["device", "import", zip, "--data", source, "--yes"]);
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(message);
        expect(run.stderr).toContain("Nothing was replaced");
        expect(readFileSync(join(source, DEVICE_OBJECT_KEY), "utf8")).toBe(before);
      });
    }

    it("a 100 MB file, by its size before reading it", async () => {
      const zip = join(scratchDir("knock-device-big-", scratch), "big.zip");
      writeFileSync(zip, "");
      truncateSync(zip, 100 * 1024 * 1024);
      const run = await knock(["device", "import", zip, "--data", source, "--yes"]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/is 104857600 bytes; a device zip is a few KB/);
    });

    it("a folder whose devicesalt is a symlink", async () => {
      const dir = scratchDir("knock-device-link-", scratch);
      writeFileSync(join(dir, "device.xml"), device["device.xml"]);
      writeFileSync(join(dir, "activation.xml"), device["activation.xml"]);
      writeFileSync(join(dir, "salt"), device.devicesalt);
      symlinkSync(join(dir, "salt"), join(dir, "devicesalt"));
      const run = await knock(["device", "import", dir, "--data", source, "--yes"]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/devicesalt is not a regular file \(a symbolic link\)/);
    });
  });

  it("accepts the files in one folder of a zip (.adept/, a Calibre backup) and ignores unrelated entries", async () => {
    expect(await readDeviceZip(zipOf([{ name: "README", data: Buffer.from("hi") }, ...entriesOf(device, ".adept/")]))).toEqual(device);
    await expect(readDeviceZip(zipOf(entriesOf(device, "a/b/")))).rejects.toThrow(/nested too deep/);
    expect(await readDeviceZip(await writeDeviceZip(device))).toEqual(device);
  });

  it("an import racing a change refuses (If-Match) and loses nothing", async () => {
    const dir = scratchDir("knock-device-race-", scratch);
    const objects = fileObjects(dir);
    const first = encodeDevice({ ...device, "device.xml": Buffer.from("<old/>") }, new Date());
    await objects.put(DEVICE_OBJECT_KEY, first, "application/json");
    const changed = encodeDevice({ ...device, "device.xml": Buffer.from("<changed/>") }, new Date());
    const racing = {
      ...objects,
      get: objects.get.bind(objects),
      async putIfMatch(...args: Parameters<typeof objects.putIfMatch>) {
        await objects.put(DEVICE_OBJECT_KEY, changed, "application/json"); // another writer, in between
        return objects.putIfMatch(...args);
      },
    };
    await expect(importDevice(racing, device, async () => true)).rejects.toThrow(/changed while importing; nothing was replaced/);
    expect((await objects.get(DEVICE_OBJECT_KEY))?.body.toString()).toBe(changed);
  });

  it("the handler reads documents with and without an origin", () => {
    const old = JSON.stringify({ format: "knock-lambda/adept-device/v1", created_at: "2026-01-01T00:00:00.000Z", files: { "device.xml": "eA==", "activation.xml": "eQ==", devicesalt: "eg==" } });
    expect(readDeviceDocument(old).origin).toBe("activated");
    expect(decodeDevice(encodeDevice(device, new Date(), "imported"))).toEqual(device);
    expect(JSON.parse(encodeDevice(device, new Date(0))) as object).not.toHaveProperty("origin");
  });
});
