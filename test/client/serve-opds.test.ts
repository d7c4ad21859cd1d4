// `knock serve` serves the same OPDS feed as the deployed function (issue 20): at /opds/<the data
// folder's feed secret>/, whose acquisition links answer 302 to knock serve's own signed download
// links; `knock open --opds` prints that address for a data folder; and a book's feed entry, like
// a reused book's link, never outlives the book that knock serve prunes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { XMLParser } from "fast-xml-parser";
import { afterAll, describe, expect, it } from "vitest";
import { OPDS_ACQUISITION_FEED_TYPE } from "../../lambda/src/contract";
import { makeAcsm } from "../handler/harness";
import { cleanup, cliEnv, fakePulumiCli, knock, scratchDir, startStandinService } from "./helpers";

const scratch: string[] = [];
afterAll(() => cleanup(scratch));

const KOREADER_ACCEPT = "application/opds+json, application/atom+xml;profile=opds-catalog, */*";

interface Link { "@_rel": string; "@_href": string; "@_type": string; "@_length": string }
interface Entry { title: string; link: Link | Link[] }

async function convert(url: string, title: string): Promise<{ filename: string; size_bytes: number; download_url: string }> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify({ acsm_content: makeAcsm({ title }) }), headers: { "content-type": "application/json" } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { output_files: { filename: string; size_bytes: number; download_url: string }[] }).output_files[0];
}

describe("knock serve's OPDS feed", () => {
  it("lists the data folder's books, and each acquisition link redirects to a download of the book's bytes", async () => {
    const dataDir = scratchDir("knock-opds-data-", scratch);
    const service = await startStandinService({ dataDir });
    try {
      const book = await convert(service.url, "Served Feed Book");
      const secret = readFileSync(join(dataDir, "opds-feed-token"), "utf8").trim();
      expect(secret).toBe(service.feedToken);
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const feedUrl = `${service.url}/opds/${secret}/`;
      const res = await fetch(feedUrl, { headers: { accept: KOREADER_ACCEPT } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(`${OPDS_ACQUISITION_FEED_TYPE};charset=utf-8`);
      const tree = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === "entry" }).parse(await res.text()) as { feed: { entry: Entry[] } };
      const entry = tree.feed.entry.find((e) => e.title === "Served Feed Book");
      expect(entry).toBeDefined();
      const acquisition = (Array.isArray(entry!.link) ? entry!.link : [entry!.link]).find((l) => l["@_rel"] === "http://opds-spec.org/acquisition")!;
      expect(Number(acquisition["@_length"])).toBe(book.size_bytes);

      const redirect = await fetch(new URL(acquisition["@_href"], feedUrl), { redirect: "manual" });
      expect(redirect.status).toBe(302);
      const location = redirect.headers.get("location")!;
      expect(new URL(location).pathname).toMatch(/^\/_downloads\//);
      const [viaFeed, viaAnswer] = await Promise.all([fetch(location), fetch(book.download_url)]);
      expect(viaFeed.status).toBe(200);
      const bytes = Buffer.from(await viaFeed.arrayBuffer());
      expect(bytes.length).toBe(book.size_bytes);
      expect(bytes.equals(Buffer.from(await viaAnswer.arrayBuffer()))).toBe(true);

      // A wrong secret is a path the service does not have.
      const wrong = await fetch(`${service.url}/opds/${"x".repeat(43)}/`, { headers: { accept: KOREADER_ACCEPT } });
      const unknown = await fetch(`${service.url}/nothing/here`, { headers: { accept: KOREADER_ACCEPT } });
      expect(wrong.status).toBe(404);
      expect(((await wrong.json()) as { error: string }).error).toBe(((await unknown.json()) as { error: string }).error);
    } finally {
      await service.stop();
    }
  });

  it("keeps its secret across restarts, and knock open --opds prints the feed's address for the data folder", async () => {
    const dataDir = scratchDir("knock-opds-keep-", scratch);
    const first = await startStandinService({ dataDir });
    const secret = first.feedToken;
    await first.stop();
    const second = await startStandinService({ dataDir });
    try {
      expect(second.feedToken).toBe(secret);
      const run = await knock(["open", "--opds", "--no-qr", "--url", second.url, "--data", dataDir]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toBe(`${second.url}/opds/${secret}/\n`);
      expect((await fetch(run.stdout.trim(), { headers: { accept: KOREADER_ACCEPT } })).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  it("knock open --opds names what is missing: a data folder without a secret, --url without --data, --token", async () => {
    const empty = scratchDir("knock-opds-empty-", scratch);
    const noSecret = await knock(["open", "--opds", "--url", "http://127.0.0.1:9", "--data", empty]);
    expect(noSecret.code).toBe(1);
    expect(noSecret.stderr).toContain(`No feed secret in ${join(empty, "opds-feed-token")}: start knock serve with --data ${empty} once`);
    const noData = await knock(["open", "--opds", "--url", "http://127.0.0.1:9"]);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toContain("--opds with --url needs --data");
    const withToken = await knock(["open", "--opds", "--token", "abc"]);
    expect(withToken.code).toBe(2);
    expect(withToken.stderr).toContain("--opds does not take --token");
  });

  it("knock open --opds prints the stack's opds_feed_url output, and explains a stack without one", async () => {
    const url = `https://abcdefghijklmnop.lambda-url.us-east-2.on.aws/opds/${"A".repeat(43)}/`;
    const withFeed = fakePulumiCli({ opds_feed_url: url }, scratch);
    const run = await knock(["open", "--opds", "--no-qr"], { env: cliEnv({ PATH: `${withFeed.bin}:/usr/bin:/bin` }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${url}\n`);
    expect(withFeed.asked()).toContain("opds_feed_url");
    const qr = await knock(["open", "--opds"], { env: cliEnv({ PATH: `${withFeed.bin}:/usr/bin:/bin` }) });
    expect(qr.stderr).toMatch(/In KOReader: .*OPDS catalog/);
    expect(qr.stderr).toMatch(/[▄▀█]{7}/);
    const iam = fakePulumiCli({ opds_feed_url: "null" }, scratch);
    const none = await knock(["open", "--opds"], { env: cliEnv({ PATH: `${iam.bin}:/usr/bin:/bin` }) });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("No OPDS feed: the stack has no opds_feed_url output. It exists only with function_url_auth TOKEN or NONE");
    const noCli = await knock(["open", "--opds"], { env: cliEnv({ PATH: "/usr/bin:/bin" }) });
    expect(noCli.code).toBe(1);
    expect(noCli.stderr).toContain("the feed's address is the stack's opds_feed_url output");
  });

  it("links a reused book no longer than knock serve keeps it (the store says when it is pruned)", async () => {
    const dataDir = scratchDir("knock-opds-life-", scratch);
    // The service's clock, moved on by the test: five minutes pass between the two requests.
    let skewMs = 0;
    const service = await startStandinService({ dataDir, downloadUrlExpirySeconds: 600, now: () => new Date(Date.now() + skewMs) });
    try {
      const acsm = makeAcsm({ title: "Pruned Later" });
      const post = () => fetch(service.url, { method: "POST", body: JSON.stringify({ acsm_content: acsm }), headers: { "content-type": "application/json" } }).then((r) => r.json() as Promise<{ reused?: boolean; output_files: { expires_at: string }[] }>);
      const first = await post();
      skewMs = 300_000;
      const second = await post();
      expect(second.reused).toBe(true);
      // The book is pruned 600 s after it was stored: the reused link ends then, not 600 s after the reuse.
      expect(Date.parse(second.output_files[0].expires_at)).toBeLessThanOrEqual(Date.parse(first.output_files[0].expires_at) + 1000);
    } finally {
      await service.stop();
    }
  });
});
