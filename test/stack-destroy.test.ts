// What `pulumi destroy` does to the Adobe device: the device bucket, its versioning, its public-access
// block and its TLS-only policy are marked retainOnDelete, so the engine removes them from the stack
// without calling the provider's Delete (Pulumi docs, "Resource option: retainOnDelete"); everything
// else is deleted. Resource options never reach the mocks' newResource, so a stack transformation
// records them, as the engine receives them with each registration.
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { installMocks, settled, type RecordedResource } from "./support/pulumi-mocks";

let resources: RecordedResource[];
const retained = new Map<string, boolean>();

beforeAll(async () => {
  resources = await installMocks();
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((args) => {
      retained.set(args.name, args.opts.retainOnDelete === true);
      return undefined;
    });
    return { ...(await import("../index")) };
  });
  await settled(resources);
}, 60_000);

const DEVICE_RESOURCES = ["knock-device-bucket", "knock-device-bucket-versioning", "knock-device-bucket-public-access", "knock-device-bucket-tls-only"];

describe("pulumi destroy", () => {
  it("keeps the device bucket, with its versions, its public-access block and its TLS-only policy", () => {
    for (const name of DEVICE_RESOURCES) expect(retained.get(name), name).toBe(true);
  });

  it("deletes everything else, the source and output buckets included", () => {
    // The stack itself (pulumi:pulumi:Stack) is the engine's, not the program's.
    const others = resources.filter((r) => r.type !== "pulumi:pulumi:Stack").map((r) => r.name).filter((n) => !DEVICE_RESOURCES.includes(n));
    expect(others).toEqual(expect.arrayContaining(["knock-output-bucket", "knock-source-bucket", "knock-lambda", "knock-repo"]));
    for (const name of others) expect(retained.get(name), name).toBe(false);
  });
});
