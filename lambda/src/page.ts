import { createHash } from "node:crypto";
import { PAGE_MARKUP_AFTER_SCRIPT, PAGE_MARKUP_BEFORE_STYLE, PAGE_MARKUP_BETWEEN, PAGE_SCRIPT, PAGE_STYLE } from "./page.generated";

/**
 * The web page the function serves at `GET /` to a browser (a phone, mostly): one self-contained
 * document, inline CSS and JS, no framework and no request to any other origin. It holds no secret,
 * so it needs no token; everything it does afterwards (health, convert, list and return loans) sends
 * the token the access link gave it (`…/#token=…`: a fragment never reaches any server).
 *
 * Its sources are lambda/page/ (index.html, style.css, app.ts and the helpers it imports);
 * scripts/build-page.mjs (`npm run build:page`) builds them into ./page.generated.ts, which is
 * committed, so that every way the handler runs — the esbuild bundle in the image (built from lambda/
 * alone), tsx for `knock serve`, vitest — loads the page the same way, from TypeScript constants. The
 * CSP hashes below are computed from those constants when this module loads, so what is hashed is byte
 * for byte what the browser sees.
 */

/** The page, exactly as served. */
export const PAGE_HTML = PAGE_MARKUP_BEFORE_STYLE + PAGE_STYLE + PAGE_MARKUP_BETWEEN + PAGE_SCRIPT + PAGE_MARKUP_AFTER_SCRIPT;

function sha256Source(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/**
 * The page's Content-Security-Policy: nothing but its own hashed inline script and style, requests
 * only to its own origin (the service: health, convert, loans, knock serve's /_downloads/), no framing, no
 * `<base>`, no form posts. The Download button is a navigation to the presigned link, which
 * `connect-src` does not govern.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256Source(PAGE_SCRIPT)}`,
  `style-src ${sha256Source(PAGE_STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** Headers of the page's answer. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": PAGE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The same URL answers JSON to API clients: caches must keep the two apart.
  vary: "Accept",
  "cache-control": "no-cache",
});

/** The inline script and style, for tests that check the CSP hashes against them. */
export const PAGE_PARTS = Object.freeze({ script: PAGE_SCRIPT, style: PAGE_STYLE });
