// The page as a document: small, self-contained, and allowed by its own Content-Security-Policy.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PAGE_CSP, PAGE_HEADERS, PAGE_HTML, PAGE_PARTS } from "../../lambda/src/page";

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/** The contents of every `<tag>…</tag>` in the page. */
function contentsOf(tag: string): string[] {
  return [...PAGE_HTML.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => m[1]);
}

describe("the page", () => {
  it("is one document under 30 KB", () => {
    expect(Buffer.byteLength(PAGE_HTML)).toBeLessThan(30 * 1024);
    expect(PAGE_HTML.startsWith("<!doctype html>")).toBe(true);
  });

  it("has exactly one inline script and one inline style, and the CSP allows exactly those by hash", () => {
    const scripts = contentsOf("script");
    const styles = contentsOf("style");
    expect(scripts).toEqual([PAGE_PARTS.script]);
    expect(styles).toEqual([PAGE_PARTS.style]);
    expect(PAGE_CSP).toContain(`script-src ${hash(scripts[0])}`);
    expect(PAGE_CSP).toContain(`style-src ${hash(styles[0])}`);
  });

  it("loads nothing from anywhere: no src, no links but data: and fragments, no inline handlers or style attributes", () => {
    expect(PAGE_HTML).not.toMatch(/<script[^>]+src=/i);
    expect([...PAGE_HTML.matchAll(/\shref="([^"]*)"/g)].map((m) => m[1]).sort()).toEqual(["#", "data:,"]);
    expect(PAGE_HTML).not.toMatch(/\son[a-z]+="/i);
    expect(PAGE_HTML).not.toMatch(/\sstyle="/i);
    // The script talks only to its own origin.
    expect([...PAGE_PARTS.script.matchAll(/fetch\("([^"]*)"/g)].map((m) => m[1])).toEqual(["/", "/kindle", "/", "/loans", "/loans/"]);
    // It asks in the page itself (some mobile browsers suppress window.confirm) and writes text, never markup.
    expect(PAGE_PARTS.script).not.toMatch(/\b(confirm|alert|prompt)\(|innerHTML|XMLHttpRequest/);
  });

  it("sends a strict policy and the hardening headers", () => {
    expect(PAGE_CSP.split("; ")).toEqual(expect.arrayContaining([
      "default-src 'none'", "connect-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'",
    ]));
    expect(PAGE_CSP).not.toContain("unsafe-");
    expect(PAGE_HEADERS).toMatchObject({ "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", vary: "Accept" });
  });

  it("labels every input for screen readers", () => {
    const ids = [...PAGE_HTML.matchAll(/<input id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.sort()).toEqual(["acsm-url", "file", "link"]);
    for (const id of ids) expect(PAGE_HTML).toContain(`<label for="${id}">`);
  });
});
