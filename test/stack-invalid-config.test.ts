import { expect, it, vi } from "vitest";
import { installMocks, settled } from "./support/pulumi-mocks";

it("stops on an invalid value before registering any resource, naming key, value and what is allowed", async () => {
  const resources = await installMocks({ config: { "knock-lambda:lambda_memory": "99999" } });
  await expect(import("../index")).rejects.toThrow(
    'Invalid configuration lambda_memory="99999": expected a whole number from 128 to 10240',
  );
  await settled(resources);
  expect(resources).toEqual([]);
});

it("stops on an SMTP URL set without --secret before registering any resource, and shows no password", async () => {
  // A fresh program: the first test's failed import of ../index is cached otherwise.
  vi.resetModules();
  const resources = await installMocks({
    config: {
      "knock-lambda:kindle_address": "reader_42@kindle.com",
      "knock-lambda:kindle_from": "reader@gmail.com",
      "knock-lambda:kindle_smtp_url": "smtps://reader%40gmail.com:PLAIN-PASSWORD-91c2@smtp.gmail.com:465",
    },
    // A plain value: the CLI names no secret key to the program.
    secrets: [],
  });
  const failure = await import("../index").then(() => undefined, (e: unknown) => e);
  expect(failure).toBeInstanceOf(Error);
  const message = (failure as Error).message;
  expect(message).toContain('Invalid configuration kindle_smtp_url="smtps://reader%40gmail.com:****@smtp.gmail.com:465"');
  expect(message).toContain("Fix it with: pulumi config set --secret kindle_smtp_url");
  expect(message).not.toContain("PLAIN-PASSWORD-91c2");
  await settled(resources);
  expect(resources).toEqual([]);
});
