// The page's "Send to Kindle" in real Chromium (Debian's, driven by playwright-core) against
// `knock serve` set up for Send to Kindle with a real SMTP server on 127.0.0.1 (test/support/smtp.ts):
// for a book just converted and for a recent one, each mail carrying the stored book's bytes, and
// the page saying the book was sent — never that it arrived.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, scratchDir, startStandinService, type StandinService } from "../client/helpers";
import { browserMissing, launchBrowser, type TestBrowser } from "../support/browser";
import { startSmtpServer, type TestSmtp } from "../support/smtp";

const WAIT_MS = 30_000;
const missing = browserMissing();
if (missing) console.warn(`skipping the page's Send to Kindle browser test: ${missing}`);

let service: StandinService;
let plain: StandinService;
let smtp: TestSmtp;
let chrome: TestBrowser;
const scratch: string[] = [];

beforeAll(async () => {
  smtp = await startSmtpServer({ tls: "implicit" });
  [service, plain, chrome] = (await Promise.all([
    startStandinService({ kindle: { to: "reader_42@kindle.com", from: "reader@gmail.test", smtpUrl: smtp.url }, seams: { kindle: { tls: { ca: smtp.ca } } } }),
    startStandinService(),
    missing ? undefined : launchBrowser(),
  ])) as [StandinService, StandinService, TestBrowser];
}, 2 * WAIT_MS);

afterAll(async () => {
  await chrome?.close();
  await service?.stop();
  await plain?.stop();
  await smtp?.close();
  cleanup(scratch);
});

async function openPage(url: string): Promise<Page> {
  const context = await chrome.browser.newContext({ viewport: { width: 360, height: 640 }, locale: "en-US", timezoneId: "UTC" });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  await page.goto(url);
  await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
  return page;
}

/** Converts a PDF loan-free ACSM titled `title` through the page's file chooser. */
async function convert(page: Page, title: string): Promise<void> {
  const file = join(scratchDir("knock-kindle-page-", scratch), `${title}.acsm`);
  writeFileSync(file, makeAcsm({ title, format: "application/pdf" }));
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByLabel("ACSM file from the shop or library").click()]);
  await chooser.setFiles(file);
  await page.getByRole("heading", { name: title }).waitFor();
}

describe.skipIf(missing !== undefined)("Send to Kindle on the page, in Chromium against knock serve", { timeout: 120_000 }, () => {
  it("sends a new book and a recent one, each mail carrying the book, and says sent, not delivered", async () => {
    const page = await openPage(`${service.url}/`);
    await convert(page, "Kindle Page Book");
    const before = smtp.received.length;
    await page.getByRole("button", { name: "Send to Kindle" }).click();
    const note = page.locator("#kindle-note");
    await note.filter({ hasText: /^Sent to reader_42@kindle\.com/ }).waitFor();
    expect(await note.textContent()).toMatch(/Amazon sends no receipt/);
    expect(await note.textContent()).not.toMatch(/delivered/i);
    expect(smtp.received.length).toBe(before + 1);
    const [attachment] = smtp.received[before].parsed.attachments;
    expect(attachment.filename).toBe("Kindle Page Book - Test Author.pdf");
    // The attachment is the book the Download link gives.
    const href = await page.locator("#download").getAttribute("href");
    const downloaded = Buffer.from(await (await fetch(new URL(href!, service.url))).arrayBuffer());
    expect(attachment.content.equals(downloaded)).toBe(true);

    // Later, from the recent conversions of this browser.
    await page.reload();
    await page.getByRole("heading", { name: "Choose the ACSM file" }).waitFor();
    await page.getByRole("button", { name: "Send Kindle Page Book.pdf to Kindle" }).click();
    await page.locator("#recent-note").filter({ hasText: /^Sent to reader_42@kindle\.com/ }).waitFor();
    expect(smtp.received.length).toBe(before + 2);
    expect(smtp.received[before + 1].parsed.attachments[0].content.equals(downloaded)).toBe(true);
    await page.context().close();
  });

  it("shows no Send to Kindle button on a service without it", async () => {
    const page = await openPage(`${plain.url}/`);
    await convert(page, "No Kindle Here");
    expect(await page.locator("#kindle").isHidden()).toBe(true);
    expect(await page.getByRole("button", { name: /to Kindle/ }).count()).toBe(0);
    await page.context().close();
  });
});
