// The OPDS feed's secret under mocks (issue 20): its own 256-bit RandomBytes in TOKEN and NONE mode,
// separate from the access token, rotated by opds_feed_token_version; the function gets only its
// hash, and `opds_feed_url` (secret) is the Function URL's /opds/<token>/. AWS_IAM has no feed.
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it, vi } from "vitest";
import { tokenMatches } from "../lambda/src/access";
import { byName, installMocks, settled, valueOf, type RecordedResource } from "./support/pulumi-mocks";

async function deploy(config: Record<string, string>): Promise<{ resources: RecordedResource[]; outputs: Record<string, unknown> }> {
  vi.resetModules();
  const resources = await installMocks({ config });
  const outputs = (await import("../index")) as Record<string, unknown>;
  await settled(resources);
  return { resources, outputs };
}

const env = (resources: RecordedResource[]) => (byName(resources, "knock-lambda").inputs.environment as { variables: Record<string, string> }).variables;
/** The engine's view of an output's secret flag; false for anything that is not an Output. */
const isSecret = async (o: unknown): Promise<boolean> => pulumi.Output.isInstance(o) && (await pulumi.isSecret(o));

describe("the OPDS feed's secret", () => {
  it.each(["TOKEN", "NONE"])("in %s mode is its own RandomBytes; the function gets its hash, the output is the secret feed URL", async (mode) => {
    const { resources, outputs } = await deploy({ "knock-lambda:function_url_auth": mode });
    const feed = byName(resources, "knock-opds-feed-token");
    expect(feed.inputs).toEqual({ length: 32, keepers: { opds_feed_token_version: "1" } });
    const url = await valueOf(outputs.opds_feed_url as pulumi.Output<string>);
    const match = /^https:\/\/abcdefghijklmnop\.lambda-url\.us-east-2\.on\.aws\/opds\/([A-Za-z0-9_-]{43})\/$/.exec(url);
    expect(match, url).not.toBeNull();
    const token = match![1];
    expect(Buffer.from(token, "base64url").toString("hex")).toBe(feed.state.hex);
    expect(await isSecret(outputs.opds_feed_url)).toBe(true);
    expect(env(resources).OPDS_FEED_TOKEN_SHA256).toBe(createHash("sha256").update(token).digest("hex"));
    // The handler's own comparison (the feed's path segment against the hash) accepts the token.
    expect(tokenMatches(token, Buffer.from(env(resources).OPDS_FEED_TOKEN_SHA256, "hex"))).toBe(true);
    // Only the hash leaves the secret: no resource's inputs hold the token itself.
    for (const r of resources) if (r.name !== "knock-opds-feed-token") expect(JSON.stringify(r.inputs), r.name).not.toContain(token);
    if (mode === "TOKEN") {
      const access = await valueOf(outputs.access_token as pulumi.Output<string>);
      expect(access).not.toBe(token);
      expect(env(resources).ACCESS_TOKEN_SHA256).not.toBe(env(resources).OPDS_FEED_TOKEN_SHA256);
    }
  }, 120_000);

  it("is replaced when opds_feed_token_version changes: a new feed URL, the old one answers nothing", async () => {
    const first = await deploy({ "knock-lambda:function_url_auth": "NONE" });
    const second = await deploy({ "knock-lambda:function_url_auth": "NONE", "knock-lambda:opds_feed_token_version": "2" });
    expect(byName(second.resources, "knock-opds-feed-token").inputs.keepers).toEqual({ opds_feed_token_version: "2" });
    const [a, b] = await Promise.all([valueOf(first.outputs.opds_feed_url as pulumi.Output<string>), valueOf(second.outputs.opds_feed_url as pulumi.Output<string>)]);
    expect(a).not.toBe(b);
    expect(env(first.resources).OPDS_FEED_TOKEN_SHA256).not.toBe(env(second.resources).OPDS_FEED_TOKEN_SHA256);
  }, 120_000);

  it("does not exist in AWS_IAM mode: no RandomBytes, no hash, opds_feed_url null", async () => {
    const { resources, outputs } = await deploy({});
    expect(resources.filter((r) => r.name === "knock-opds-feed-token")).toEqual([]);
    expect(env(resources)).not.toHaveProperty("OPDS_FEED_TOKEN_SHA256");
    expect(outputs.opds_feed_url).toBeNull();
  }, 120_000);
});
