// The web page in a real browser: headless Chromium (Debian's package, driven by playwright-core)
// against `knock serve` — the real handler with the libgourou stand-ins and the fake distributor,
// on 127.0.0.1 but asking for a token as a TOKEN deployment does. Nothing leaves 127.0.0.1: every
// request the page makes is recorded and must go to the service's own origin.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACSM_INDEX_PREFIX, OUTPUT_PREFIX } from "../../lambda/src/public";
import { makeAcsm } from "../handler/harness";
import { cleanup, scratchDir, startStandinService, type StandinService } from "../client/helpers";
import { browserMissing, launchBrowser, type TestBrowser } from "../support/browser";

const SAMPLE_ACSM = resolve(__dirname, "../fixtures/libgourou/sample-book.acsm");
// docs/phone.png (linked from the README) is rewritten only on request, so a test run leaves the
// work tree as it was: KNOCK_UPDATE_SCREENSHOT=1 npx vitest run test/page
const SCREENSHOT = process.env.KNOCK_UPDATE_SCREENSHOT === "1" ? resolve(__dirname, "../../docs/phone.png") : join(tmpdir(), `knock-phone-${process.pid}.png`);
const TOKEN = "s3cr3t-T0ken_for-the-page-tests-0123456789ab";
const PHONE = { width: 360, height: 640 };
// Ceilings, not budgets: each wait ends as soon as the page shows what it waits for, and a busy
// machine only makes that later. Playwright's default for every wait and action, and a test's whole run.
const WAIT_MS = 30_000;
const TEST_MS = 120_000;

const missing = browserMissing();
if (missing) console.warn(`skipping the page's browser tests: ${missing}`);

let service: StandinService;
let chrome: TestBrowser;
/** How far the service's clock runs ahead of this machine's: lets a loan end without waiting for it. */
let serviceClockAheadMs = 0;
const scratch: string[] = [];

beforeAll(async () => {
  [service, chrome] = await Promise.all([startStandinService({ accessToken: TOKEN, now: () => new Date(Date.now() + serviceClockAheadMs) }), missing ? undefined : launchBrowser()]) as [StandinService, TestBrowser];
}, 2 * WAIT_MS);

afterAll(async () => {
  await chrome?.close();
  await service?.stop();
  cleanup(scratch);
});

/** A page in a fresh context (its own storage) that records every request and console message. */
async function openPage(): Promise<{ context: BrowserContext; page: Page; requests: string[]; consoleLines: string[] }> {
  const context = await chrome.browser.newContext({ viewport: PHONE, locale: "en-US", timezoneId: "UTC", acceptDownloads: true });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const requests: string[] = [];
  const consoleLines: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  return { context, page, requests, consoleLines };
}

/** Chooses `file` through the page's real file chooser. */
async function chooseFile(page: Page, file: string): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByLabel("ACSM file from the shop or library").click()]);
  await chooser.setFiles(file);
}

/**
 * A library loan's ACSM (the stand-in gives a loan token for fulfillmentType="loan", valid until the
 * ACSM's expiration) and the id the service will give the loan: the first 16 hex digits of the SHA-1
 * of `urn:uuid:<transaction>`, as libgourou names it.
 */
function loanAcsmFile(title: string): { file: string; id: string } {
  const acsm = makeAcsm({ title, expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  const file = join(scratchDir("knock-page-", scratch), `${title}.acsm`);
  writeFileSync(file, acsm);
  return { file, id: createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16) };
}

const loansDir = (): string => join(service.dataDir, "adept", "loans");

/** The ids of the loans knock serve keeps (`<data>/adept/loans/<id>.xml`). */
function storedLoanIds(): string[] {
  return existsSync(loansDir()) ? readdirSync(loansDir()).filter((n) => n.endsWith(".xml")).map((n) => n.slice(0, -4)).sort() : [];
}

/** Puts a loan token where knock serve keeps them, as acsmdownloader writes it (or any text). */
function storeLoanToken(id: string, token: { name: string; validity: string; operatorURL?: string } | string): void {
  mkdirSync(loansDir(), { recursive: true });
  const xml =
    typeof token === "string"
      ? token
      : `<?xml version="1.0"?>\n<loanToken>\n  <id>urn:uuid:${id}</id>\n  <operatorURL>${token.operatorURL ?? "https://acs.library.test/fulfillment"}</operatorURL>\n` +
        `  <validity>${token.validity}</validity>\n  <name>${token.name}</name>\n</loanToken>\n`;
  writeFileSync(join(loansDir(), `${id}.xml`), xml);
}

/** Forgets every stored loan (DELETE /loans/<id>), so each loan scenario starts from none. */
async function forgetAllLoans(): Promise<void> {
  for (const id of storedLoanIds()) {
    const res = await fetch(`${service.url}/loans/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  }
}

/** True when every request went to the service itself (or is an inline data: URL). */
function foreignRequests(requests: readonly string[]): string[] {
  const origin = new URL(service.url).origin;
  return requests.filter((u) => !u.startsWith("data:") && new URL(u).origin !== origin);
}

describe.skipIf(missing !== undefined)("the page in Chromium, against knock serve asking for a token", { timeout: TEST_MS }, () => {
  it("takes the token from the access link, converts a chosen ACSM and downloads exactly the stored book", async () => {
    const { context, page, requests, consoleLines } = await openPage();
    // Hold the conversion back until the elapsed time has visibly ticked (the stand-ins are fast).
    let release = (): void => undefined;
    const released = new Promise<void>((done) => (release = done));
    await page.route(`${service.url}/`, async (route) => {
      if (route.request().method() === "POST") await released;
      await route.continue();
    });

    const response = await page.goto(`${service.url}/#token=${TOKEN}`);
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'none'");
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    // The token moved into storage and out of the address bar (and the history entry).
    expect(await page.evaluate<unknown>('localStorage.getItem("knock.token")')).toBe(TOKEN);
    expect(page.url()).toBe(`${service.url}/`);
    expect(await page.evaluate<unknown>("location.hash")).toBe("");

    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByLabel("ACSM file from the shop or library").click()]);
    await chooser.setFiles(SAMPLE_ACSM);
    // A busy machine may run the page's 1 s tick late enough to show 2 s first: any whole second counts.
    await page.getByRole("status").filter({ hasText: /Converting… [1-9]\d* s/ }).waitFor();
    release();

    await page.getByRole("heading", { name: "Les Misérables" }).waitFor();
    expect(await page.locator("#book-meta").textContent()).toBe("EPUB, 66 KB");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download Les Misérables.epub" }).click()]);
    expect(download.suggestedFilename()).toBe("Les Misérables.epub");
    const booksRoot = join(service.dataDir, "books", "converted");
    // One request's folder, beside the reuse index (converted/by-acsm/), whose place in readdir's
    // order is the file system's.
    const requestDirs = readdirSync(booksRoot).filter((d) => `${OUTPUT_PREFIX}${d}/` !== ACSM_INDEX_PREFIX);
    expect(requestDirs).toHaveLength(1);
    const [requestDir] = requestDirs;
    const stored = readFileSync(join(booksRoot, requestDir, "Les Misérables.epub"));
    expect(stored.length).toBe(65536);
    expect(readFileSync(await download.path()).equals(stored)).toBe(true);

    // This browser's recent conversions list the book with its link.
    expect(await page.locator("#recent-list a").getAttribute("href")).toBe(await page.locator("#download").getAttribute("href"));

    // A 360 px wide phone screen needs no horizontal scrolling.
    expect(await page.evaluate<unknown>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    mkdirSync(resolve(SCREENSHOT, ".."), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    if (!SCREENSHOT.includes("docs")) scratch.push(SCREENSHOT);

    await page.getByRole("button", { name: "Convert another" }).click();
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();

    expect(foreignRequests(requests)).toEqual([]);
    // The download is a navigation (Chromium hands it to its download manager, outside the page's
    // request events): the link is same-origin, and the service logged serving it.
    expect(new URL(String(await page.locator("#download").getAttribute("href"))).origin).toBe(new URL(service.url).origin);
    expect(service.logs.filter((l) => / GET \/_downloads\/\S+ 200 /.test(l))).toHaveLength(1);
    expect(consoleLines.filter((l) => /Content Security Policy|pageerror|error:/i.test(l))).toEqual([]);
    await context.close();
  });

  it("answers a wrong token with the 401 message and the paste-the-link prompt, then takes a right link in the same tab", async () => {
    const { context, page, requests } = await openPage();
    await page.goto(`${service.url}/#token=not-the-token`);
    await page.getByRole("heading", { name: "Open your access link" }).waitFor();
    expect(await page.locator("#token-why").textContent()).toBe("The saved access link is not valid any more: the service refused its token (it may have been replaced by a new one).");
    expect(page.url()).toBe(`${service.url}/`);
    // Opening the right link in the same tab changes only the fragment (no new page load).
    await page.goto(`${service.url}/#token=${TOKEN}`);
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    expect(page.url()).toBe(`${service.url}/`);
    expect(foreignRequests(requests)).toEqual([]);
    // The service never saw the token in a URL: it travels only in the Authorization header.
    expect(service.logs.join("\n")).not.toContain("not-the-token");
    await context.close();
  });

  it("without a token, explains where the access link comes from and accepts it pasted", async () => {
    const { context, page, consoleLines } = await openPage();
    await page.goto(`${service.url}/`);
    await page.getByRole("heading", { name: "Open your access link" }).waitFor();
    expect(await page.locator("#need-token").textContent()).toContain("npx knock open");
    expect(await page.locator("#token-why").isHidden()).toBe(true);

    await page.getByLabel("Or paste the access link").fill(`${service.url}/#token=${TOKEN}`);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    expect(await page.evaluate<unknown>('localStorage.getItem("knock.token")')).toBe(TOKEN);
    expect(consoleLines.filter((l) => /Content Security Policy|pageerror/i.test(l))).toEqual([]);
    await context.close();
  });

  it("names the date of an expired ACSM in plain words", async () => {
    const dir = scratchDir("knock-page-", scratch);
    const expired = join(dir, "old-loan.acsm");
    writeFileSync(expired, makeAcsm({ title: "Old Loan", expiration: "2020-01-01T00:00:00+00:00" }));
    const { context, page } = await openPage();
    await page.goto(`${service.url}/#token=${TOKEN}`);
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByLabel("ACSM file from the shop or library").click()]);
    await chooser.setFiles(expired);
    await page.getByRole("heading", { name: "That did not work" }).waitFor();
    const text = await page.locator("#error-text").textContent();
    expect(text).toContain("This ACSM expired on January 1, 2020 (2020-01-01T00:00:00+00:00)");
    expect(text).toContain("download a fresh one from the shop or library");
    await context.close();
  });

  it("is operable by keyboard alone and follows the dark colour scheme", async () => {
    const { context, page } = await openPage();
    await page.emulateMedia({ colorScheme: "light" });
    await page.goto(`${service.url}/#token=${TOKEN}`);
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    const light = await page.evaluate<unknown>("getComputedStyle(document.body).backgroundColor");
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await page.evaluate<unknown>("getComputedStyle(document.body).backgroundColor");
    expect(light).toBe("rgb(251, 250, 247)");
    expect(dark).toBe("rgb(20, 20, 22)");

    // Tab order: the file input, then the address field; typing an address and Enter submits it.
    await page.keyboard.press("Tab");
    expect(await page.evaluate<unknown>("document.activeElement?.id")).toBe("file");
    await page.keyboard.press("Tab");
    expect(await page.evaluate<unknown>("document.activeElement?.id")).toBe("acsm-url");
    await page.keyboard.type("http://not-https.example/book.acsm");
    await page.keyboard.press("Enter");
    expect(await page.locator("#url-hint").textContent()).toBe("Paste an address starting with https://");
    await context.close();
  });

  it("converts a loan ACSM, lists it under My loans, keeps it on Cancel and returns it after the inline confirmation", async () => {
    await forgetAllLoans();
    const { file, id } = loanAcsmFile("The Time Machine");
    const { context, page, requests, consoleLines } = await openPage();
    page.on("dialog", (d) => consoleLines.push(`dialog: ${d.type()}`));
    await page.goto(`${service.url}/#token=${TOKEN}`);
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    // No loans yet: the section stays out of the way.
    expect(await page.locator("#loans").isHidden()).toBe(true);

    await chooseFile(page, file);
    await page.getByRole("heading", { name: "The Time Machine" }).waitFor();
    expect(await page.locator("#book-loan").textContent()).toBe("This is a library loan ending on Dec 10, 2099, 10:00 AM. You can return it early from \u201cMy loans\u201d below.");
    // The conversion refreshed the list: the loan is there, with when it ends and its Return button.
    const myLoans = page.getByRole("region", { name: "My loans" });
    const row = myLoans.getByRole("listitem").filter({ hasText: "The Time Machine" });
    await row.waitFor();
    expect(await row.locator("p").first().textContent()).toBe("ends Dec 10, 2099, 10:00 AM");
    expect(storedLoanIds()).toEqual([id]);

    // Return asks first, in the page: the question, and the focus on its confirm button.
    await row.getByRole("button", { name: "Return The Time Machine" }).click();
    const question = myLoans.getByRole("group", { name: "Return \u201cThe Time Machine\u201d to the library? You can no longer read it." });
    await question.waitFor();
    expect(await page.evaluate<unknown>("document.activeElement?.textContent")).toBe("Return");
    expect(await page.evaluate<unknown>("document.activeElement?.closest('[role=group]') !== null")).toBe(true);
    expect(await page.evaluate<unknown>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    // Cancel: nothing is sent, the loan stays, and the focus goes back to its Return button.
    await question.getByRole("button", { name: "Cancel" }).click();
    expect(await question.count()).toBe(0);
    expect(await page.evaluate<unknown>("document.activeElement?.getAttribute('aria-label')")).toBe("Return The Time Machine");
    expect(requests.filter((u) => u.endsWith("/return"))).toEqual([]);
    expect(storedLoanIds()).toEqual([id]);

    // Escape cancels too; then, by keyboard alone: Enter on Return, Enter on the confirm button.
    await page.keyboard.press("Enter");
    await question.waitFor();
    await page.keyboard.press("Escape");
    expect(await question.count()).toBe(0);
    await page.keyboard.press("Enter");
    await question.waitFor();
    await page.keyboard.press("Enter");

    // The service's own message, in a polite live region; the refreshed list is empty.
    const note = myLoans.locator("#loan-note");
    await note.filter({ hasText: "Returned" }).waitFor();
    expect(await note.textContent()).toBe("Returned \u201cThe Time Machine\u201d to the library.");
    expect(await note.getAttribute("aria-live")).toBe("polite");
    await myLoans.getByText("No library loans.").waitFor();
    expect(await myLoans.getByRole("listitem").count()).toBe(0);
    expect(await page.evaluate<unknown>("document.activeElement?.id")).toBe("loans-h");
    expect(storedLoanIds()).toEqual([]);
    expect(requests.filter((u) => u.endsWith("/return"))).toEqual([`${service.url}/loans/${id}/return`]);

    expect(foreignRequests(requests)).toEqual([]);
    expect(consoleLines.filter((l) => /Content Security Policy|pageerror|error:|dialog:/i.test(l))).toEqual([]);
    await context.close();
  });

  it("says in plain words what the library or the service answered: a refusal, a loan that ended meanwhile, an unreadable token", async () => {
    await forgetAllLoans();
    // Returning a loan needs the device that borrowed it: a first conversion activates it (when
    // this test runs on its own, no other has).
    const converted = await fetch(service.url, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ acsm_content: makeAcsm({ title: "Any Book" }) }) });
    expect(converted.status).toBe(200);
    // The stand-in's library refuses every request for this loan with an ADEPT error.
    storeLoanToken("1111111111111111", { name: "Refused", validity: "2099-01-01T00:00:00+00:00", operatorURL: "https://acs.library.test/f?adept_error=E_ADEPT_DISTRIBUTOR_AUTH" });
    storeLoanToken("2222222222222222", { name: "Long Over", validity: "2020-01-01T00:00:00+00:00" });
    storeLoanToken("00000000000000bb", "<loanToken><id>cut");
    const soonEnds = Date.now() + 3_600_000;
    storeLoanToken("3333333333333333", { name: "Ends Soon", validity: new Date(soonEnds).toISOString() });
    const { context, page, requests, consoleLines } = await openPage();
    await page.goto(`${service.url}/#token=${TOKEN}`);
    const myLoans = page.getByRole("region", { name: "My loans" });
    await myLoans.getByRole("listitem").nth(3).waitFor();
    const row = (title: string) => myLoans.getByRole("listitem").filter({ hasText: title });
    const note = myLoans.locator("#loan-note");

    // Only a returnable loan that has not ended gets a button; an unreadable token says why, without one.
    expect(await myLoans.getByRole("button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label")).sort())).toEqual(["Return Ends Soon", "Return Refused"]);
    expect(await row("Long Over").locator("p").textContent()).toBe("ended Jan 1, 2020, 12:00 AM");
    expect(await row("Unreadable loan").textContent()).toContain("The stored loan token is not valid (");
    expect(await row("Unreadable loan").textContent()).toContain("It cannot be returned from here; the loan ends on its own.");

    // The library refuses: its answer, and the loan stays listed with its button.
    await row("Refused").getByRole("button", { name: "Return Refused" }).click();
    await myLoans.getByRole("button", { name: "Return", exact: true }).click();
    await note.filter({ hasText: "refused" }).waitFor();
    expect(await note.textContent()).toBe(
      "The library refused to take back \u201cRefused\u201d: it answered E_ADEPT_DISTRIBUTOR_AUTH. It may already be returned or ended. " +
        "It stays in this list; once the library no longer shows it, remove it with npx knock return --forget 1111111111111111.",
    );
    expect(await note.getAttribute("class")).toBe("bad");
    await row("Refused").getByRole("button", { name: "Return Refused" }).waitFor();
    expect(storedLoanIds()).toContain("1111111111111111");

    // A loan listed as running ends before its return is confirmed: 410, nothing to offer. The
    // service's clock passes the loan's end while the question is open, so no waiting is needed.
    await row("Ends Soon").getByRole("button", { name: "Return Ends Soon" }).click();
    serviceClockAheadMs = soonEnds - Date.now() + 60_000;
    try {
      await myLoans.getByRole("button", { name: "Return", exact: true }).click();
      await note.filter({ hasText: "already ended" }).waitFor();
      expect(await note.textContent()).toBe("\u201cEnds Soon\u201d has already ended: the library has taken it back, there is nothing to return.");
      await row("Ends Soon").locator("p").filter({ hasText: /^ended / }).waitFor();
      expect(await row("Ends Soon").getByRole("button").count()).toBe(0);
    } finally {
      serviceClockAheadMs = 0;
    }

    expect(foreignRequests(requests)).toEqual([]);
    expect(consoleLines.filter((l) => /Content Security Policy|pageerror/i.test(l))).toEqual([]);
    await context.close();
    await forgetAllLoans();
  });
});
