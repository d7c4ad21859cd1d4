import { expect, it } from "vitest";
import { installMocks, settled } from "./support/pulumi-mocks";

it("stops on an invalid value before registering any resource, naming key, value and what is allowed", async () => {
  const resources = await installMocks({ config: { "knock-lambda:lambda_memory": "99999" } });
  await expect(import("../index")).rejects.toThrow(
    'Invalid configuration lambda_memory="99999": expected a whole number from 128 to 10240',
  );
  await settled(resources);
  expect(resources).toEqual([]);
});
