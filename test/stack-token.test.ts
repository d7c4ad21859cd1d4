import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { ACCESS_TOKEN_BYTES, tokenFromHex, tokenHash } from "../infra/access-token";
import { tokenMatches } from "../lambda/src/access";
import { byName, fakeRandomBytes, installMocks, REGION, settled, type RecordedResource } from "./support/pulumi-mocks";

// The program with function_url_auth = TOKEN: a public URL, a generated token kept as a secret, and
// a function that is given only the token's hash.
let resources: RecordedResource[];
let outputs: Record<string, pulumi.Output<unknown> | undefined>;

const FUNCTION_URL = `https://abcdefghijklmnop.lambda-url.${REGION}.on.aws/`;
const BYTES = fakeRandomBytes(ACCESS_TOKEN_BYTES, "knock-access-token", { access_token_version: "3" });
const TOKEN = tokenFromHex(BYTES.toString("hex"));

/** Resolves an output with its secret flag (the engine's view, not just the value). */
async function resolved(output: pulumi.Output<unknown> | undefined): Promise<{ value: unknown; secret: boolean }> {
  if (output === undefined) return { value: undefined, secret: false };
  const secret = await pulumi.isSecret(output);
  const value = await new Promise((done) => output.apply((v) => { done(v); return v; }));
  return { value, secret };
}

beforeAll(async () => {
  resources = await installMocks({ config: { "knock-lambda:function_url_auth": "TOKEN", "knock-lambda:access_token_version": "3" } });
  // The module's own exports are the Outputs the engine serializes (with their secret flag); what
  // runInPulumiStack returns is already resolved to plain values.
  await pulumi.runtime.runInPulumiStack(async () => {
    outputs = { ...(await import("../index")) } as typeof outputs;
    return outputs;
  });
  await settled(resources);
}, 60_000);

describe("function_url_auth = TOKEN", () => {
  it("makes the Function URL public (auth NONE): the handler checks the token itself", () => {
    expect(byName(resources, "knock-lambda-url").inputs.authorizationType).toBe("NONE");
  });

  it("generates 256 random bits with @pulumi/random, replaced when access_token_version changes", () => {
    const bytes = byName(resources, "knock-access-token");
    expect(bytes.type).toBe("random:index/randomBytes:RandomBytes");
    expect(bytes.inputs).toEqual({ length: 32, keepers: { access_token_version: "3" } });
    expect(TOKEN).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("gives the function only the token's SHA-256, which the handler accepts the token against", () => {
    const variables = (byName(resources, "knock-lambda").inputs.environment as { variables: Record<string, string> }).variables;
    expect(variables.FUNCTION_URL_AUTH).toBe("TOKEN");
    expect(variables.ACCESS_TOKEN_SHA256).toBe(tokenHash(TOKEN));
    expect(tokenMatches(TOKEN, Buffer.from(variables.ACCESS_TOKEN_SHA256, "hex"))).toBe(true);
  });

  it("puts the plaintext token in no resource's inputs (only the random resource's own state holds it)", () => {
    const forms = [TOKEN, BYTES.toString("hex"), BYTES.toString("base64")];
    for (const resource of resources) {
      const text = JSON.stringify(resource.inputs);
      for (const form of forms) expect(text, `${resource.name} inputs`).not.toContain(form);
    }
  });

  it("exports access_token and access_url (the URL with #token=…) as secrets", async () => {
    const token = await resolved(outputs.access_token);
    const url = await resolved(outputs.access_url);
    expect(token).toEqual({ value: TOKEN, secret: true });
    expect(url).toEqual({ value: `${FUNCTION_URL}#token=${TOKEN}`, secret: true });
    expect(await resolved(outputs.function_url)).toEqual({ value: FUNCTION_URL, secret: false });
  });
});
