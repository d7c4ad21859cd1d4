// Headless Chromium for the page tests: Debian's `chromium` package driven by playwright-core
// (playwright's own browser download cannot work offline). Each launch gets a fresh profile and
// the flags that keep Chromium from reaching any network service of its own.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM = process.env.KNOCK_TEST_CHROMIUM ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `no Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (Debian; .ci/run does) to run the page's browser tests`;
}

/** A running browser and how to stop it (and remove its profile). */
export interface TestBrowser {
  readonly browser: Browser;
  close(): Promise<void>;
}

/**
 * Starts Chromium. playwright adds `--headless` and a fresh `--user-data-dir` of its own (a new temp
 * profile per launch, removed on close; it refuses one in `args`); the flags here keep Chromium off
 * the network and quick to start. Each test then gets a new context: its own storage.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
    headless: true,
    timeout: 30_000, // a ceiling: on a busy machine Chromium starts late, not never
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}
