// The page's wording in a real browser (headless Chromium, as test/page/browser.test.ts) against
// `knock serve` with the libgourou stand-ins, asking for a token: a file that is not an ACSM is
// said to be what it is before anything is sent; the XML parser's jargon becomes plain words; "Try
// again" appears only where sending again can help, and then sends again; a field's error looks like
// one; a returned loan's card says so; the quotes are typographic. Nothing leaves 127.0.0.1.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm, testEgress } from "../handler/harness";
import { cleanup, scratchDir, startStandinService, type StandinService } from "../client/helpers";
import { browserMissing, launchBrowser, type TestBrowser } from "../support/browser";

const TOKEN = "wording-test-token_0123456789abcdefghijklmnop";
const PHONE = { width: 360, height: 640 };
// Ceilings, not budgets: each wait ends as soon as the page shows what it waits for.
const WAIT_MS = 30_000;
const TEST_MS = 120_000;

const missing = browserMissing();
if (missing) console.warn(`skipping the page's wording tests: ${missing}`);

let service: StandinService;
/** A second knock serve whose converter has no internet: nothing resolves. */
let offline: StandinService;
let chrome: TestBrowser;
const scratch: string[] = [];

beforeAll(async () => {
  if (missing) return;
  const offlineState = scratchDir("knock-wording-state-", scratch);
  [service, offline, chrome] = await Promise.all([
    startStandinService({ accessToken: TOKEN }),
    startStandinService({
      accessToken: TOKEN,
      seams: {
        egress: { ...testEgress({ port: 9 }), resolver: async (host: string) => Promise.reject(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: "EAI_AGAIN" })) },
        toolEnv: () => ({ FAKE_ADEPT_STATE_DIR: offlineState, FAKE_ADEPT_NO_RETRY_PAUSE: "1" }),
      },
    }),
    launchBrowser(),
  ]);
}, 2 * WAIT_MS);

afterAll(async () => {
  await chrome?.close();
  await service?.stop();
  await offline?.stop();
  cleanup(scratch);
});

/** A page on `on` with the token, showing the file chooser; it records the POSTs it sends to `/`. */
async function openPage(on: StandinService = service): Promise<{ context: BrowserContext; page: Page; posts: string[]; consoleLines: string[] }> {
  const context = await chrome.browser.newContext({ viewport: PHONE, locale: "en-US", timezoneId: "UTC" });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const posts: string[] = [];
  const consoleLines: string[] = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/") posts.push(r.url());
  });
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${on.url}/#token=${TOKEN}`);
  await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
  return { context, page, posts, consoleLines };
}

function file(name: string, content: string | Buffer): string {
  const path = join(scratchDir("knock-wording-", scratch), name);
  writeFileSync(path, content);
  return path;
}

async function chooseFile(page: Page, path: string): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByLabel("ACSM file from the shop or library").click()]);
  await chooser.setFiles(path);
}

/** The failure card once shown: its text and which of its buttons are there. */
async function failure(page: Page): Promise<{ text: string; tryAgain: boolean; chooseAnother: boolean }> {
  await page.getByRole("heading", { name: "That did not work" }).waitFor();
  return {
    text: (await page.locator("#error-text").textContent()) ?? "",
    tryAgain: await page.getByRole("button", { name: "Try again" }).isVisible(),
    chooseAnother: await page.getByRole("button", { name: "Choose another file" }).isVisible(),
  };
}

describe.skipIf(missing !== undefined)("the page's wording, in Chromium against knock serve", { timeout: TEST_MS }, () => {
  it.each([
    ["book.pdf", Buffer.from("%PDF-1.7\n%\u00e2\u00e3\u00cf\u00d3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "latin1"), "a PDF"],
    ["book.epub", Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(26), Buffer.from("mimetypeapplication/epub+zip"), Buffer.from([0xff, 0xfe, 0x00])]), "an EPUB book"],
    ["URLLink.acsm", Buffer.from("<!DOCTYPE html>\n<html><body>Sign in to download your book</body></html>\n"), "a web page (the download may have saved the shop\u2019s page instead of the file)"],
  ])("says %s is not an ACSM before sending it, and offers another file rather than a retry", async (name, content, what) => {
    const { context, page, posts } = await openPage();
    await chooseFile(page, file(name, content));
    const shown = await failure(page);
    expect(shown).toEqual({
      text: `\u201c${name}\u201d is ${what}, not an ACSM file. Choose the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.`,
      tryAgain: false,
      chooseAnother: true,
    });
    expect(posts).toEqual([]);
    await page.getByRole("button", { name: "Choose another file" }).click();
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    await context.close();
  });

  it("says a file the XML parser refuses in plain words, without the parser's jargon", async () => {
    const { context, page, posts } = await openPage();
    await chooseFile(page, file("notes.acsm", "Order 1234\nThanks for your purchase!\n"));
    const shown = await failure(page);
    expect(posts).toHaveLength(1);
    expect(shown.text).toMatch(/^This file is not an ACSM the service can read: it is damaged, or another kind of file\. Choose the \.acsm file the shop or library gave you, or download it again\. \(request id [0-9a-f-]{36}\)$/);
    expect(shown.text).not.toMatch(/root node|well-formed|\d+:\d+/);
    expect([shown.tryAgain, shown.chooseAnother]).toEqual([false, true]);
    await context.close();
  });

  it.each([
    ["an expired ACSM (410)", makeAcsm({ title: "Old", expiration: "2020-01-01T00:00:00+00:00" }), /^This ACSM expired on January 1, 2020/],
    ["a device limit (409)", makeAcsm({ operatorURL: "https://acs.example-shop.test/fulfillment?adept_error=E_GOOGLE_DEVICE_LIMIT_REACHED" }), /Retrying will not help\./],
  ])("offers no \"Try again\" after %s, where retrying cannot help", async (_name, acsm, said) => {
    const { context, page } = await openPage();
    await chooseFile(page, file("book.acsm", acsm));
    const shown = await failure(page);
    expect(shown.text).toMatch(said);
    expect([shown.tryAgain, shown.chooseAnother]).toEqual([false, true]);
    await context.close();
  });

  it("offers \"Try again\" after a server failure (502), and it sends the same file again", async () => {
    const { context, page, posts } = await openPage();
    await chooseFile(page, file("book.acsm", makeAcsm({ operatorURL: "https://acs.example-shop.test/fulfillment?http_status=503" })));
    const shown = await failure(page);
    expect(shown.text).toMatch(/^Could not talk to the distributor\u2019s server: HTTP Error code 503\. The shop\u2019s or Adobe\u2019s server failed; try again later\./);
    expect([shown.tryAgain, shown.chooseAnother]).toEqual([true, false]);
    expect(posts).toHaveLength(1);
    await page.getByRole("button", { name: "Try again" }).click();
    await expect.poll(() => posts.length, { timeout: WAIT_MS }).toBe(2);
    await failure(page);
    await context.close();
  });

  it("without internet, shows the service's own words naming the host, with \"Try again\"", async () => {
    const { context, page } = await openPage(offline);
    await chooseFile(page, file("book.acsm", makeAcsm()));
    const shown = await failure(page);
    expect(shown.text).toMatch(
      /^This machine has no route to adeactivate\.adobe\.com \(Adobe\u2019s activation server\): the name does not resolve\. Check this machine\u2019s internet connection and DNS, then try again\. \(request id [0-9a-f-]{36}\)$/,
    );
    expect(shown.tryAgain).toBe(true);
    // One kind of apostrophe on the page: the service's ASCII ones are shown typographic.
    expect(shown.text).not.toContain("'");
    await context.close();
  });

  it("shows a refused http:// address as an error on its field", async () => {
    const { context, page } = await openPage();
    await page.getByLabel("Paste the ACSM\u2019s https address").fill("http://shop.example.test/URLLink.acsm");
    await page.keyboard.press("Enter");
    const hint = page.locator("#url-hint");
    await hint.filter({ hasText: "Paste an address starting with https://" }).waitFor();
    expect(await hint.getAttribute("class")).toBe("bad");
    expect(await page.getByLabel("Paste the ACSM\u2019s https address").getAttribute("aria-invalid")).toBe("true");
    await context.close();
  });

  it("updates the result card once its loan is returned, and says so with typographic quotes", async () => {
    const acsm = makeAcsm({ title: "Card Loan", expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
    const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
    const id = createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16);
    const { context, page, consoleLines } = await openPage();
    await chooseFile(page, file("Card Loan.acsm", acsm));
    await page.getByRole("heading", { name: "Card Loan" }).waitFor();
    expect(await page.locator("#book-loan").textContent()).toContain("You can return it early from \u201cMy loans\u201d below.");

    const row = page.getByRole("region", { name: "My loans" }).getByRole("listitem").filter({ hasText: "Card Loan" });
    await row.getByRole("button", { name: "Return Card Loan" }).click();
    await page.getByRole("group", { name: "Return \u201cCard Loan\u201d to the library? You can no longer read it." }).getByRole("button", { name: "Return" }).click();
    const note = page.locator("#loan-note");
    await note.filter({ hasText: "Returned" }).waitFor();
    expect(await note.textContent()).toBe("Returned \u201cCard Loan\u201d to the library.");
    expect(await page.locator("#book-loan").textContent()).toBe("You returned this loan to the library.");
    const stillThere = await fetch(`${service.url}/loans`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(((await stillThere.json()) as { loans: { id: string }[] }).loans.map((l) => l.id)).not.toContain(id);
    expect(consoleLines.filter((l) => /Content Security Policy|pageerror|error:/i.test(l))).toEqual([]);
    await context.close();
  });

  it("tells where the access link comes from for knock serve too", async () => {
    const context = await chrome.browser.newContext({ viewport: PHONE, locale: "en-US" });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    await page.goto(`${service.url}/`);
    await page.getByRole("heading", { name: "Open your access link" }).waitFor();
    const text = (await page.locator("#need-token").textContent()) ?? "";
    expect(text).toContain("npx knock open");
    expect(text).toContain("For knock serve, open the link it printed when it started, or the one npx knock open --url prints with its address and --token.");
    await context.close();
  });
});
