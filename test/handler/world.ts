// The handler tests' shared world, registered with vitest's hooks. Kept apart from harness.ts, which
// the benchmarks, the image test and `npm run demo` load outside vitest (vitest cannot be required there).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { createS3Client, type Handler } from "../../lambda/src/handler";
import { loadConfig } from "../../lambda/src/config";
import { s3Stores, type HandlerStores } from "../../lambda/src/stores";
import { testHandler, type TestHandlerDeps } from "../support/test-handler";
import type { LoanStore } from "../../lambda/src/loan-store";
import type { DeviceStore } from "../../lambda/src/device";
import { handlerEnv, standinEnv, startFakeDistributor, startLocalS3, testEgress, type FakeDistributor, type LocalS3 } from "./harness";

/** What {@link handlerWorld} sets up for one test file. */
export interface HandlerWorld {
  readonly s3: LocalS3;
  readonly distributor: FakeDistributor;
  /** The stand-in's server-side state (FAKE_ADEPT_STATE_DIR: activations, counters). */
  readonly stateDir: string;
  /** Every log line of every container made by {@link HandlerWorld.container}. */
  readonly logs: string[];
  /** The handler's own S3 loan store on the local server: the tests' view of the device bucket's loans. */
  readonly loanStore: LoanStore;
  /** The handler's own S3 device store on the local server. */
  readonly deviceStore: DeviceStore;
  /** The handler's own S3 stores on the local server (to replace one of them in a container). */
  stores(): HandlerStores;
  /** A fresh (cold) container of the real handler, configured from the environment unless `deps` say otherwise. */
  container(deps?: Partial<TestHandlerDeps>): Handler;
}

/**
 * Registers, for the calling test file, the world the handler runs in: a local S3 server with S3's
 * conditional rules, a fake distributor behind the egress proxy, the stand-in's state folder and the
 * handler's environment — all removed again after the file's tests.
 */
export function handlerWorld(): HandlerWorld {
  const savedEnv = { ...process.env };
  const scratch: string[] = [];
  const logs: string[] = [];
  let s3: LocalS3 | undefined;
  let distributor: FakeDistributor | undefined;
  let stateDir: string | undefined;
  let loanStore: LoanStore | undefined;
  let deviceStore: DeviceStore | undefined;
  const ready = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`handlerWorld: ${name} is used before beforeAll ran`);
    return value;
  };

  beforeAll(async () => {
    s3 = await startLocalS3();
    distributor = await startFakeDistributor();
    stateDir = mkdtempSync(join(tmpdir(), "knock-adept-state-"));
    Object.assign(process.env, handlerEnv(s3, { FAKE_ADEPT_STATE_DIR: stateDir }));
    const config = loadConfig();
    ({ loans: loanStore, device: deviceStore } = s3Stores(createS3Client(config), config));
  }, 60_000);

  afterAll(async () => {
    await s3?.close();
    await distributor?.close();
    for (const dir of [...(stateDir ? [stateDir] : []), ...scratch]) rmSync(dir, { recursive: true, force: true });
    process.env = savedEnv;
  });

  return {
    get s3() { return ready(s3, "s3"); },
    get distributor() { return ready(distributor, "distributor"); },
    get stateDir() { return ready(stateDir, "stateDir"); },
    logs,
    get loanStore() { return ready(loanStore, "loanStore"); },
    get deviceStore() { return ready(deviceStore, "deviceStore"); },
    stores() {
      const config = loadConfig();
      return s3Stores(createS3Client(config), config);
    },
    container(deps = {}) {
      const tmpRoot = mkdtempSync(join(tmpdir(), "knock-container-"));
      scratch.push(tmpRoot);
      return testHandler({
        config: loadConfig(), tmpRoot, egress: testEgress(ready(distributor, "distributor")), toolEnv: standinEnv,
        logSink: (line) => logs.push(line), ...deps,
      });
    },
  };
}
