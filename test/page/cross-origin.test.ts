// Other web pages cannot use `knock serve` (issue 16), tried in real Chromium (Debian's package,
// driven by playwright-core) against the real server module with the libgourou stand-ins, on
// loopback and without a token, as `knock serve` runs by default:
// - a page from another loopback origin (http://127.0.0.2:<port>, a static server started here)
//   fires what a browser sends cross-origin without a CORS preflight (Fetch standard, "CORS-
//   safelisted request-header" and "no-cors" mode: GET/HEAD/POST with text/plain,
//   application/x-www-form-urlencoded or multipart/form-data; HTML forms likewise): the handler
//   refuses them by their Origin / Sec-Fetch-Site, so nothing is converted, activated or returned;
// - a page on a name mapped to 127.0.0.1 (Chromium's --host-resolver-rules), which the browser
//   takes for knock serve's own origin (DNS rebinding): the server refuses its Host, so the page
//   reads no loans and converts nothing.
// Every attack must be seen arriving at the server (its request log), so a browser that blocked
// it on its own cannot make a test pass.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { startStandinService, type StandinService } from "../client/helpers";
import { browserMissing, CHROMIUM } from "../support/browser";

const missing = browserMissing();
if (missing) console.warn(`skipping the cross-origin browser tests: ${missing}`);

/** The name the rebinding page is served under; Chromium resolves it to 127.0.0.1. */
const REBOUND = "evil.test";

let browser: Browser;
let attacker: Server;
let attackerOrigin: string;
/** Pages the attacker's server serves, by path. */
const pages = new Map<string, string>();
let service: StandinService | undefined;

beforeAll(async () => {
  attacker = createServer((req, res) => {
    const page = pages.get(req.url ?? "");
    res.writeHead(page === undefined ? 404 : 200, { "content-type": "text/html; charset=utf-8" }).end(page ?? "");
  });
  // Another loopback address is another origin, and another site (an IP address is its own site).
  await new Promise<void>((done) => attacker.listen(0, "127.0.0.2", done));
  attackerOrigin = `http://127.0.0.2:${(attacker.address() as AddressInfo).port}`;
  if (missing) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
      `--host-resolver-rules=MAP ${REBOUND} 127.0.0.1`,
      // Chromium's own Local Network Access checks stop the rebound page's requests to 127.0.0.1
      // before they leave the browser (tried: "Failed to fetch"); other browsers, and older
      // Chromium, do not. Off, so what is tested is what knock serve itself refuses.
      "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,BlockInsecurePrivateNetworkRequests",
    ],
    headless: true,
    timeout: 30_000,
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((done) => attacker.close(() => done()));
});

afterEach(async () => {
  await service?.stop();
  service = undefined;
});

/** A library loan's ACSM and the id the service gives it (first 16 hex of SHA-1 of `urn:uuid:<transaction>`). */
function loanAcsm(title: string): { acsm: string; id: string } {
  const acsm = makeAcsm({ title, expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  return { acsm, id: createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16) };
}

function activations(s: StandinService): number {
  const file = join(s.stateDir, "activations.log");
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
}

function books(s: StandinService): string[] {
  const root = join(s.dataDir, "books", "converted");
  return existsSync(root) ? readdirSync(root).sort() : [];
}

/** The loans knock serve lists, asked as the `knock` client asks (no Origin, no Host but its own). */
async function listedLoans(s: StandinService): Promise<string[]> {
  const res = await fetch(`${s.url}/loans`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { loans: { id: string }[] }).loans.map((l) => l.id).sort();
}

/** knock serve's request log lines (`<time> METHOD PATH STATUS <n>ms request_id=…`) from `from` on. */
function requestLines(s: StandinService, from: number): { method: string; path: string; status: number }[] {
  return s.logs.slice(from).flatMap((line) => {
    const m = /^\S+Z (\S+) (\S+) (\d{3}) \d+ms request_id=/.exec(line);
    return m ? [{ method: m[1], path: m[2], status: Number(m[3]) }] : [];
  });
}

/** Waits until the server has answered `count` POSTs since `from` (a generous ceiling: a busy machine is slow, not stuck). */
async function untilPosts(s: StandinService, from: number, count: number): Promise<{ method: string; path: string; status: number }[]> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const posts = requestLines(s, from).filter((r) => r.method === "POST");
    if (posts.length >= count) return posts;
    if (Date.now() > deadline) throw new Error(`knock serve answered ${posts.length} of ${count} POSTs: ${JSON.stringify(posts)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * An attacker's page that fires, on load, HTML form posts (each into its own frame, so the page
 * stays) and `no-cors` fetches at `target`. Values are put in by script, so no escaping can change them.
 */
function attackPage(target: string, attacks: { form?: { path: string; enctype: string; fields: [string, string][] }; fetch?: { path: string; body: string; contentType?: string } }[]): string {
  return `<!doctype html><meta charset="utf-8"><title>win a prize</title><body><script>
const target = ${JSON.stringify(target)};
const attacks = ${JSON.stringify(attacks)};
attacks.forEach((a, n) => {
  if (a.form) {
    const frame = document.createElement("iframe");
    frame.name = "sink" + n;
    document.body.appendChild(frame);
    const form = document.createElement("form");
    form.method = "POST";
    form.action = target + a.form.path;
    form.enctype = a.form.enctype;
    form.target = frame.name;
    for (const [name, value] of a.form.fields) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  } else {
    const init = { method: "POST", mode: "no-cors", body: a.fetch.body };
    if (a.fetch.contentType) init.headers = { "content-type": a.fetch.contentType };
    fetch(target + a.fetch.path, init).catch(() => undefined);
  }
});
</script>`;
}

/** Opens `url` in a fresh context and leaves it open until `done` resolves. */
async function visit<T>(url: string, done: () => Promise<T>): Promise<T> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url);
    return await done();
  } finally {
    await context.close();
  }
}

describe.skipIf(missing !== undefined)("a page from another origin", () => {
  it("cannot convert with the user's device: text/plain, urlencoded and multipart form posts and no-cors fetches of an ACSM are refused, nothing is activated or stored", async () => {
    service = await startStandinService();
    const from = service.logs.length;
    const acsms = Array.from({ length: 6 }, (_, n) => loanAcsm(`Planted ${n}`));
    // text/plain form encoding is `name=value` + CRLF: a name and value split at the ACSM's first
    // "=" put the ACSM itself, unencoded, in the body.
    const split = (acsm: string): [string, string] => [acsm.slice(0, acsm.indexOf("=")), acsm.slice(acsm.indexOf("=") + 1)];
    pages.set(
      "/convert",
      attackPage(service.url, [
        { form: { path: "/", enctype: "text/plain", fields: [split(acsms[0].acsm)] } },
        { form: { path: "/", enctype: "application/x-www-form-urlencoded", fields: [["acsm_content", acsms[1].acsm]] } },
        { form: { path: "/", enctype: "multipart/form-data", fields: [["acsm_content", acsms[2].acsm]] } },
        { fetch: { path: "/", body: acsms[3].acsm } }, // a string body is sent as text/plain;charset=UTF-8
        { fetch: { path: "/", body: acsms[4].acsm, contentType: "application/x-www-form-urlencoded" } },
        { fetch: { path: "/", body: JSON.stringify({ acsm_content: acsms[5].acsm }), contentType: "text/plain" } },
      ]),
    );

    const posts = await visit(`${attackerOrigin}/convert`, () => untilPosts(service!, from, 6));

    expect(posts.map((p) => p.path)).toEqual(Array(6).fill("/"));
    for (const p of posts) expect([403, 415]).toContain(p.status);
    // No device was made for these requests, no book stored, no loan kept.
    expect(activations(service)).toBe(0);
    expect(books(service)).toEqual([]);
    expect(await listedLoans(service)).toEqual([]);
  }, 90_000);

  it("cannot return a loan: a form post and a no-cors fetch to POST /loans/<id>/return are refused and the loan stays listed", async () => {
    service = await startStandinService();
    // The loan, converted as the user's own `knock` would: one activation, one book.
    const { acsm, id } = loanAcsm("Kept");
    const own = await fetch(service.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: acsm }) });
    expect(own.status).toBe(200);
    expect(await listedLoans(service)).toEqual([id]);
    const before = { activations: activations(service), books: books(service) };
    expect(before.activations).toBe(1);

    const from = service.logs.length;
    pages.set(
      "/return",
      attackPage(service.url, [
        { form: { path: `/loans/${id}/return`, enctype: "text/plain", fields: [] } },
        { fetch: { path: `/loans/${id}/return`, body: "" } },
      ]),
    );
    const posts = await visit(`${attackerOrigin}/return`, () => untilPosts(service!, from, 2));

    expect(posts).toEqual([
      { method: "POST", path: `/loans/${id}/return`, status: 403 },
      { method: "POST", path: `/loans/${id}/return`, status: 403 },
    ]);
    expect(await listedLoans(service)).toEqual([id]);
    expect(activations(service)).toBe(before.activations);
    expect(books(service)).toEqual(before.books);
  }, 90_000);
});

describe.skipIf(missing !== undefined)("a page on a name that resolves to 127.0.0.1 (DNS rebinding)", () => {
  it("cannot read the loans or convert, though the browser takes it for knock serve's own origin: the server refuses its Host", async () => {
    service = await startStandinService();
    const { acsm, id } = loanAcsm("Private Title");
    expect((await fetch(service.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: acsm }) })).status).toBe(200);
    const before = { activations: activations(service), books: books(service) };
    const port = new URL(service.url).port;
    const rebound = `http://${REBOUND}:${port}`;

    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // The attacker's page as its own server sent it while the name still pointed there; only this
      // document is answered here, the page's own requests then go to the name's new address.
      await page.route(`${rebound}/`, (route) =>
        route.request().isNavigationRequest() ? route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>rebound</title>" }) : route.continue(),
      );
      await page.goto(`${rebound}/`);
      const from = service.logs.length;
      const read = await page.evaluate(async () => {
        const loans = await fetch("/loans");
        const convert = await fetch("/", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: "<fulfillmentToken/>" }) });
        return { loans: { status: loans.status, text: await loans.text() }, convert: { status: convert.status, text: await convert.text() } };
      });

      // Same origin to the browser, so the page can read the answers: both are the Host refusal.
      for (const answer of [read.loans, read.convert]) {
        expect(answer.status).toBe(421);
        const body = JSON.parse(answer.text) as { error_type: string; refused_host: string };
        expect(body).toMatchObject({ error_type: "MisdirectedRequest", refused_host: `${REBOUND}:${port}` });
      }
      expect(read.loans.text).not.toContain(id);
      expect(read.loans.text).not.toContain("Private Title");
      // They did reach knock serve, which answered every one itself. Chromium sends a request that
      // got 421 once more on a new connection (RFC 9110 §15.5.20 allows that retry), and may ask
      // for /favicon.ico too: each is refused the same way.
      const seen = requestLines(service, from);
      expect(seen.filter((r) => r.status !== 421)).toEqual([]);
      expect(seen.filter((r) => r.path === "/loans" && r.method === "GET").length).toBeGreaterThanOrEqual(1);
      expect(seen.filter((r) => r.path === "/" && r.method === "POST").length).toBeGreaterThanOrEqual(1);
    } finally {
      await context.close();
    }
    expect(activations(service)).toBe(before.activations);
    expect(books(service)).toEqual(before.books);
  }, 90_000);
});
