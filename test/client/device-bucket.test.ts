// `knock device` on the deployed service's device bucket: the bucket from --bucket or the stack's
// device_credentials_bucket output, read and written with the deployer's own AWS credentials (here
// the local S3 server's), with the handler's object layout and conditional writes; AWS failures as
// one clear line; and an import racing a cold start's activation of the same bucket.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEVICE_BACKUP_PREFIX, DEVICE_OBJECT_KEY } from "../../lambda/src/contract";
import { DEVICE_FILES, DeviceManager, checkDeviceFiles, deviceStore, readDeviceDocument, type DeviceFiles } from "../../lambda/src/device";
import type { Logger } from "../../lambda/src/log";
import { S3Client, s3Objects, type ObjectStore } from "../../lambda/src/public";
import { fileObjects } from "../../client/serve/file-objects";
import { readDeviceZip, writeDeviceZip } from "../../client/lib/device-archive";
import { DEVICE_BUCKET, handlerEnv, startLocalS3, TOOLS_DIR, type LocalS3 } from "../handler/harness";
import { cleanup, cliEnv, fakePulumiCli, knock, scratchDir, type KnockRun } from "./helpers";

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const FUNCTION_URL = "https://abcdefghijklmnop.lambda-url.us-east-2.on.aws/";
const scratch: string[] = [];
let s3: LocalS3;
let bucket: ObjectStore;

/** The AWS settings knock gets from the deployer's environment, pointing at the local S3 server. */
function awsEnv(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  const all = handlerEnv(s3);
  const keep = ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"];
  return { ...Object.fromEntries(keep.map((k) => [k, all[k]])), AWS_ENDPOINT_URL_S3: endpoint, ...extra };
}

/** knock's environment: the AWS settings, and a Pulumi CLI stand-in whose stack has `outputs` (none: no Pulumi CLI). */
function env(outputs: Record<string, string> | undefined, aws: Record<string, string> = awsEnv(s3.endpoint)): NodeJS.ProcessEnv {
  const path = outputs === undefined ? "/usr/bin:/bin" : `${fakePulumiCli(outputs, scratch).bin}:/usr/bin:/bin`;
  return cliEnv({ ...aws, PATH: path });
}

const stackWithBucket = { device_credentials_bucket: DEVICE_BUCKET, function_url: FUNCTION_URL };

/** An S3 client of this test process on `endpoint`, with the SDK settings handlerEnv gives the handler. */
function testS3(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** A device activated by the libgourou stand-in (a random serial and key each time). */
async function activatedDevice(): Promise<DeviceFiles> {
  const store = deviceStore(fileObjects(scratchDir("knock-bucket-src-", scratch)));
  const manager = new DeviceManager(store, TOOLS_DIR, scratchDir("knock-bucket-cache-", scratch));
  await manager.get(quiet, () => 120_000, { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: scratchDir("knock-bucket-state-", scratch) });
  return (await store.load())!;
}

async function zipFile(files: DeviceFiles): Promise<string> {
  const file = join(scratchDir("knock-bucket-zip-", scratch), "device.zip");
  writeFileSync(file, await writeDeviceZip(files));
  return file;
}

async function storedText(): Promise<string | undefined> {
  return (await bucket.get(DEVICE_OBJECT_KEY))?.body.toString("utf8");
}

async function backups(): Promise<string[]> {
  const listed = await bucket.list(DEVICE_BACKUP_PREFIX);
  return Promise.all(listed.map(async (o) => (await bucket.get(o.key))!.body.toString("utf8")));
}

const same = (a: DeviceFiles, b: DeviceFiles): boolean => DEVICE_FILES.every((name) => a[name].equals(b[name]));

async function emptyBucket(): Promise<void> {
  for (const object of await bucket.list("")) await bucket.delete(object.key);
}

/**
 * An HTTP proxy in front of the local S3 server that can hold back one request until the test
 * releases it, so an interleaving of two clients is chosen by what each has sent, not by the clock.
 * With `refuse`, it answers matching requests as S3 answers a principal whose policy lacks the
 * action: 403 with an AccessDenied error document (Amazon S3 API Reference, "Error responses").
 */
interface Gate {
  readonly endpoint: string;
  /** Holds the next request that matches; `reached` settles when it arrives. */
  hold(match: (req: IncomingMessage) => boolean): { reached: Promise<void>; release: () => void };
  close(): Promise<void>;
}

async function startGate(upstream: string, refuse?: (req: IncomingMessage) => boolean): Promise<Gate> {
  const target = new URL(upstream);
  const holds: { match: (req: IncomingMessage) => boolean; arrived: () => void; released: Promise<void> }[] = [];
  const server: Server = createServer((req, res) => {
    if (refuse?.(req)) {
      req.resume();
      res.writeHead(403, { "content-type": "application/xml" }).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    const index = holds.findIndex((h) => h.match(req));
    const held = index === -1 ? undefined : holds.splice(index, 1)[0];
    held?.arrived();
    void (held?.released ?? Promise.resolve()).then(() => {
      const headers = { ...req.headers };
      delete headers.expect; // node's server already answered 100-continue
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hold(match) {
      let arrived!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((r) => (arrived = r));
      const released = new Promise<void>((r) => (release = r));
      holds.push({ match, arrived, released });
      return { reached, release };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

const isDeviceKey = (req: IncomingMessage): boolean => (req.url ?? "").split("?")[0] === `/${DEVICE_BUCKET}/${DEVICE_OBJECT_KEY}`;
const createOfDevice = (req: IncomingMessage): boolean => req.method === "PUT" && isDeviceKey(req) && req.headers["if-none-match"] === "*";

beforeAll(async () => {
  s3 = await startLocalS3();
  bucket = s3Objects(testS3(s3.endpoint), DEVICE_BUCKET);
}, 60_000);

afterAll(async () => {
  await s3?.close();
  cleanup(scratch);
});

beforeEach(emptyBucket);

describe("knock device on the device bucket", () => {
  let device: DeviceFiles;
  let other: DeviceFiles;
  beforeAll(async () => {
    [device, other] = [await activatedDevice(), await activatedDevice()];
  }, 120_000);

  it("reports an empty bucket, named by the stack's device_credentials_bucket output", async () => {
    const stack = fakePulumiCli(stackWithBucket, scratch);
    const run = await knock(["device"], { env: cliEnv({ ...awsEnv(s3.endpoint), PATH: `${stack.bin}:/usr/bin:/bin` }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`No Adobe device in bucket ${DEVICE_BUCKET} (the deployed service's device)`);
    expect(stack.asked()).toContain("device_credentials_bucket");
    const json = await knock(["device", "--json"], { env: env(stackWithBucket) });
    expect(JSON.parse(json.stdout)).toEqual({ stored: false, backups: 0 });
  }, 60_000);

  it("imports into the bucket and exports the same three files byte for byte", async () => {
    const imported = await knock(["device", "import", await zipFile(device)], { env: env(stackWithBucket) });
    expect(imported.code, imported.stderr).toBe(0);
    const serial = checkDeviceFiles(device).serial;
    expect(imported.stderr).toContain(`Imported device ${serial} into bucket ${DEVICE_BUCKET}`);
    const document = readDeviceDocument((await storedText())!);
    expect(document.origin).toBe("imported");

    const status = await knock(["device"], { env: env(stackWithBucket) });
    expect(status.stdout).toContain(`serial       ${serial}`);
    expect(status.stdout).toContain("origin       imported");
    expect(status.stdout).not.toContain(device.devicesalt.toString("base64"));

    const out = join(scratchDir("knock-bucket-out-", scratch), "exported.zip");
    const exported = await knock(["device", "export", out], { env: env(stackWithBucket) });
    expect(exported.code, exported.stderr).toBe(0);
    const files = await readDeviceZip(readFileSync(out));
    for (const name of DEVICE_FILES) expect(files[name].equals(device[name]), name).toBe(true);
  }, 60_000);

  it("--bucket overrides the stack's output; a bucket that does not exist is named", async () => {
    const stack = { device_credentials_bucket: "knock-devices-of-another-stack", function_url: FUNCTION_URL };
    expect((await knock(["device", "import", await zipFile(device), "--bucket", DEVICE_BUCKET], { env: env(stack) })).code).toBe(0);
    const status = await knock(["device", "--bucket", DEVICE_BUCKET, "--json"], { env: env(stack) });
    expect(JSON.parse(status.stdout)).toMatchObject({ stored: true, serial: checkDeviceFiles(device).serial });

    const missing = await knock(["device"], { env: env(stack) });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("knock: The device bucket knock-devices-of-another-stack does not exist: check --bucket, or the stack's `pulumi stack output device_credentials_bucket`.\n");
    const exportMissing = await knock(["device", "export", join(scratchDir("knock-bucket-out-", scratch), "x.zip")], { env: env(stack) });
    expect(exportMissing.stderr).toContain("knock-devices-of-another-stack does not exist");
  }, 60_000);

  it("replacing asks (--yes without a terminal) and keeps the old document as a backup", async () => {
    expect((await knock(["device", "import", await zipFile(device)], { env: env(stackWithBucket) })).code).toBe(0);
    const before = (await bucket.get(DEVICE_OBJECT_KEY))!;

    const refused = await knock(["device", "import", await zipFile(other)], { env: env(stackWithBucket) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`bucket ${DEVICE_BUCKET} (the deployed service's device) already holds device ${checkDeviceFiles(device).serial}`);
    expect(refused.stderr).toContain("pass --yes");
    expect((await bucket.get(DEVICE_OBJECT_KEY))!.etag).toBe(before.etag);
    expect(await backups()).toEqual([]);

    const replaced = await knock(["device", "import", await zipFile(other), "--yes"], { env: env(stackWithBucket) });
    expect(replaced.code, replaced.stderr).toBe(0);
    const backupKey = /the old one is kept as (\S+)\.$/m.exec(replaced.stderr)?.[1];
    expect(backupKey).toMatch(/^adept\/backups\/device-/);
    expect((await bucket.get(backupKey!))!.body.toString("utf8")).toBe(before.body.toString("utf8"));
    expect(same(readDeviceDocument((await storedText())!).files, other)).toBe(true);
    expect((await knock(["device"], { env: env(stackWithBucket) })).stdout).toContain("backups      1");
  }, 60_000);

  it("refuses a corrupt device and replaces nothing", async () => {
    expect((await knock(["device", "import", await zipFile(device)], { env: env(stackWithBucket) })).code).toBe(0);
    const before = await storedText();
    const folder = scratchDir("knock-bucket-bad-", scratch);
    writeFileSync(join(folder, "device.xml"), other["device.xml"]);
    writeFileSync(join(folder, "activation.xml"), other["activation.xml"]);
    writeFileSync(join(folder, "devicesalt"), other.devicesalt.subarray(0, 15));
    const run = await knock(["device", "import", folder, "--yes"], { env: env(stackWithBucket) });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/devicesalt: must be exactly 16 bytes, it is 15\. Nothing was replaced/);
    expect(await storedText()).toBe(before);
    expect(await backups()).toEqual([]);
  }, 60_000);
});

describe("where knock device finds the bucket, the region and the credentials", () => {
  it("--data with --bucket is a usage error", async () => {
    const run = await knock(["device", "--data", scratchDir("knock-bucket-data-", scratch), "--bucket", DEVICE_BUCKET], { env: env(stackWithBucket) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Pass either --data DIR (a knock serve data folder) or --bucket NAME (the deployed service's device bucket), not both.");
    const sub = await knock(["device", "--bucket", DEVICE_BUCKET, "export", "x.zip", "--data", "."], { env: env(stackWithBucket) });
    expect(sub.code).toBe(2);
  });

  it("without the Pulumi CLI or the stack output, says to pass --bucket or --data", async () => {
    const none = await knock(["device"], { env: env(undefined) });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("No device bucket: pass --bucket NAME (the deployed service's device bucket) or --data DIR (a knock serve data folder)");
    expect(none.stderr).toContain("needs the Pulumi CLI, which is not installed");
    const noOutput = await knock(["device"], { env: env({ function_url: FUNCTION_URL }) });
    expect(noOutput.code).toBe(2);
    expect(noOutput.stderr).toContain("or run where `pulumi stack output device_credentials_bucket` works");
  });

  it("takes the region from the stack's Function URL when the AWS SDK's chain has none, else asks for AWS_REGION", async () => {
    const { AWS_REGION: _region, ...noRegion } = awsEnv(s3.endpoint);
    const fromUrl = await knock(["device", "--json"], { env: env(stackWithBucket, noRegion) });
    expect(fromUrl.code, fromUrl.stderr).toBe(0);
    expect(JSON.parse(fromUrl.stdout)).toEqual({ stored: false, backups: 0 });
    const none = await knock(["device", "--bucket", DEVICE_BUCKET], { env: env({}, noRegion) });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("No AWS region for the device bucket: set AWS_REGION");
  });

  it("without AWS credentials says how to set them, without a stack trace", async () => {
    const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...noCredentials } = awsEnv(s3.endpoint);
    const run = await knock(["device", "--bucket", DEVICE_BUCKET], { env: env(undefined, noCredentials) });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^knock: No AWS credentials found for the device bucket knock-devices: /);
    expect(run.stderr).toContain("export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });

  it("an identity without s3:PutObject is told the bucket and the action, and nothing is stored", async () => {
    const gate = await startGate(s3.endpoint, (req) => req.method === "PUT");
    try {
      const run = await knock(["device", "import", await zipFile(await activatedDevice()), "--bucket", DEVICE_BUCKET], { env: env(undefined, awsEnv(gate.endpoint)) });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`knock: Access denied: your AWS identity may not s3:PutObject on the device bucket ${DEVICE_BUCKET}.`);
      expect(run.stderr).toContain(`s3:GetObject, s3:PutObject and s3:ListBucket on arn:aws:s3:::${DEVICE_BUCKET}`);
      expect(await storedText()).toBeUndefined();
    } finally {
      await gate.close();
    }
  }, 60_000);
});

describe("an import racing a cold start's activation of the same bucket (one wins, nothing is lost)", () => {
  let imported: DeviceFiles;
  let zip: string;
  let knockGate: Gate;
  let handlerGate: Gate;
  beforeAll(async () => {
    imported = await activatedDevice();
    zip = await zipFile(imported);
    knockGate = await startGate(s3.endpoint);
    handlerGate = await startGate(s3.endpoint);
  }, 120_000);
  afterAll(async () => {
    await knockGate?.close();
    await handlerGate?.close();
  });

  /** A cold start's device manager on the bucket (through its own gate), with the stand-in's activation. */
  function coldStart(): { get: () => Promise<string>; activations: () => number } {
    const state = scratchDir("knock-race-state-", scratch);
    const manager = new DeviceManager(deviceStore(s3Objects(testS3(handlerGate.endpoint), DEVICE_BUCKET)), TOOLS_DIR, scratchDir("knock-race-cache-", scratch));
    return {
      get: () => manager.get(quiet, () => 120_000, { PATH: process.env.PATH ?? "", FAKE_ADEPT_STATE_DIR: state }),
      activations: () => (readdirSync(state).includes("activations.log") ? readFileSync(join(state, "activations.log"), "utf8").trim().split("\n").filter(Boolean).length : 0),
    };
  }

  const importYes = (): Promise<KnockRun> => knock(["device", "import", zip, "--yes", "--bucket", DEVICE_BUCKET], { env: env(undefined, awsEnv(knockGate.endpoint)) });

  function filesIn(dir: string): DeviceFiles {
    return Object.fromEntries(DEVICE_FILES.map((name) => [name, readFileSync(join(dir, name))])) as DeviceFiles;
  }

  /**
   * Exactly one device is stored. The import either won (the imported device is current, and a
   * device the activation stored first is its one backup) or was refused because the activation's
   * device was stored while it ran (then that one is current, nothing was replaced and no backup
   * made). The cold start uses the stored device or its own, and its own is never lost.
   */
  async function assertOneWinsNothingLost(run: KnockRun, dir: string): Promise<"import" | "activation"> {
    const current = readDeviceDocument((await storedText())!);
    const kept = (await backups()).map((text) => readDeviceDocument(text).files);
    const used = filesIn(dir);
    const activationStoredItsOwn = !same(used, imported);
    if (run.code === 0) {
      expect(same(current.files, imported)).toBe(true);
      expect(current.origin).toBe("imported");
      if (activationStoredItsOwn) {
        expect(run.stderr).toContain("the old one is kept as adept/backups/device-");
        expect(kept).toHaveLength(1);
        expect(same(kept[0], used)).toBe(true);
      } else {
        expect(kept).toEqual([]);
      }
      return "import";
    }
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain("A device was stored while importing; nothing was replaced.");
    expect(activationStoredItsOwn).toBe(true);
    expect(current.origin).toBe("activated");
    expect(same(current.files, used)).toBe(true);
    expect(kept).toEqual([]);
    return "activation";
  }

  it("run side by side, several times", async () => {
    for (let round = 0; round < 4; round++) {
      await emptyBucket();
      const cold = coldStart();
      const [run, dir] = await Promise.all([importYes(), cold.get()]);
      await assertOneWinsNothingLost(run, dir);
      expect(cold.activations()).toBeLessThanOrEqual(1);
    }
  }, 240_000);

  it("the activation stores first: the import replaces it and keeps it as the backup", async () => {
    const cold = coldStart();
    const dir = await cold.get();
    const run = await importYes();
    expect(await assertOneWinsNothingLost(run, dir)).toBe("import");
    expect(cold.activations()).toBe(1);
    expect(await backups()).toHaveLength(1);
  }, 120_000);

  it("the activation stores between the import's read and its create: the import is refused", async () => {
    const held = knockGate.hold(createOfDevice);
    const importing = importYes();
    await held.reached; // the import found no device and is about to create one
    const cold = coldStart();
    const dir = await cold.get();
    held.release();
    expect(await assertOneWinsNothingLost(await importing, dir)).toBe("activation");
    expect(cold.activations()).toBe(1);
  }, 120_000);

  it("the import stores between the activation's read and its create: the cold start uses the imported device", async () => {
    const held = handlerGate.hold(createOfDevice);
    const cold = coldStart();
    const starting = cold.get();
    await held.reached; // the cold start found no device, activated one and is about to store it
    const run = await importYes();
    held.release();
    const dir = await starting;
    expect(await assertOneWinsNothingLost(run, dir)).toBe("import");
    expect(cold.activations()).toBe(1);
    expect(same(filesIn(dir), imported)).toBe(true);
  }, 120_000);

  it("a device the activation stored is not replaced by an import without --yes", async () => {
    const dir = await coldStart().get();
    const before = await storedText();
    const run = await knock(["device", "import", zip, "--bucket", DEVICE_BUCKET], { env: env(undefined, awsEnv(knockGate.endpoint)) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("pass --yes");
    expect(await storedText()).toBe(before);
    expect(same(readDeviceDocument(before!).files, filesIn(dir))).toBe(true);
    expect(await backups()).toEqual([]);
  }, 120_000);
});
