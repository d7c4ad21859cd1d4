// One activation in flight per process: knock serve handles many requests at once, and every
// request that finds no stored device would otherwise run adept_activate — each run a new Adobe
// device and one more of the distributor's device slots spent, even though the conditional write
// keeps only one of them.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DeviceManager, deviceStore } from "../../lambda/src/device";
import type { Logger } from "../../lambda/src/log";
import { fileObjects } from "../../client/serve/file-objects";
import { TOOLS_DIR } from "./harness";

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe("the device manager in one process", () => {
  const scratch: string[] = [];
  afterEach(() => { for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true }); });

  function tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    scratch.push(dir);
    return dir;
  }

  it("runs one activation for 50 concurrent requests that find no device, and gives them all that device", async () => {
    // Prepare: an empty device store on disk (knock serve's), the libgourou stand-in recording each activation.
    const state = tempDir("knock-adept-state-");
    const store = deviceStore(fileObjects(tempDir("knock-serve-data-")));
    const manager = new DeviceManager(store, TOOLS_DIR, tempDir("knock-device-cache-"));
    const env = { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: state };

    // Act
    const dirs = await Promise.all(Array.from({ length: 50 }, () => manager.get(quiet, () => 120_000, env)));

    // Assess
    const activations = readFileSync(join(state, "activations.log"), "utf8").trim().split("\n");
    expect(activations).toHaveLength(1);
    expect(new Set(dirs).size).toBe(1);
    const stored = await store.load();
    expect(stored?.["device.xml"].toString("utf8")).toBe(readFileSync(join(dirs[0], "device.xml"), "utf8"));
  }, 180_000);

  it("activates again after a failed activation instead of handing out the failure for good", async () => {
    const state = tempDir("knock-adept-state-");
    const manager = new DeviceManager(deviceStore(fileObjects(tempDir("knock-serve-data-"))), TOOLS_DIR, tempDir("knock-device-cache-"));
    // No network: the activation fails (0x500b), for every request that shared it.
    const offline = { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: state, FAKE_ADEPT_OFFLINE: "1" };
    const failed = await Promise.allSettled([manager.get(quiet, () => 60_000, offline), manager.get(quiet, () => 60_000, offline)]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);

    const dir = await manager.get(quiet, () => 60_000, { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: state });
    expect(readFileSync(join(dir, "devicesalt")).length).toBe(16);
  }, 180_000);
});
