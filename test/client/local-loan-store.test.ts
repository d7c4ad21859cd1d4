// knock serve's loans: the function's own loan store on the data folder's object store, which follows
// S3's rules for the requests the store makes (Amazon S3 User Guide, "Conditional requests"), so the
// handler behaves the same on the local disk as in the cloud.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fileObjects } from "../../client/serve/file-objects";
import { LOANS_PREFIX } from "../../lambda/src/contract";
import { loanStore } from "../../lambda/src/loan-store";
import { matchLoans, loanTable } from "../../client/lib/loans";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store() {
  const dir = mkdtempSync(join(tmpdir(), "knock-loans-"));
  dirs.push(dir);
  return Object.assign(loanStore(fileObjects(dir)), { dir: join(dir, LOANS_PREFIX) });
}

describe("the loan store on a data folder", () => {
  it("keeps tokens as files under adept/loans/, lists only tokens, and replaces on put", async () => {
    const s = store();
    expect(await s.list()).toEqual([]);
    await s.put("0123456789abcdef", "<loanToken>one</loanToken>");
    await s.put("0123456789abcdef", "<loanToken>two</loanToken>");
    expect(await s.createMarker("0123456789abcdef", "{}")).toBeDefined();
    writeFileSync(join(s.dir, "notes.txt"), "not a token");
    expect((await s.list()).map((e) => e.id)).toEqual(["0123456789abcdef"]);
    expect((await s.get("0123456789abcdef"))?.xml).toBe("<loanToken>two</loanToken>");
    expect(readdirSync(s.dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("deletes only an unchanged token: removed, changed (412) or absent (404)", async () => {
    const s = store();
    await s.put("0123456789abcdef", "a");
    const first = (await s.get("0123456789abcdef"))!;
    await s.put("0123456789abcdef", "b");
    expect(await s.removeIfUnchanged("0123456789abcdef", first.etag)).toBe("changed");
    const second = (await s.get("0123456789abcdef"))!;
    expect(second.etag).toBe('"92eb5ffee6ae2fec3ad71c777531578f"'); // MD5 of "b", quoted, as S3's ETag
    expect(await s.removeIfUnchanged("0123456789abcdef", second.etag)).toBe("removed");
    expect(await s.removeIfUnchanged("0123456789abcdef", second.etag)).toBe("absent");
    expect(await s.get("0123456789abcdef")).toBeUndefined();
  });

  it("creates a return marker only if none exists (If-None-Match: *), even when asked concurrently", async () => {
    const s = store();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.createMarker("0123456789abcdef", `{"n":${i}}`)));
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    const marker = (await s.readMarker("0123456789abcdef"))!;
    expect(await s.removeMarker("0123456789abcdef", '"stale"')).toBe("changed");
    expect(await s.removeMarker("0123456789abcdef", marker.etag)).toBe("removed");
    expect(await s.createMarker("0123456789abcdef", "{}")).toBeDefined();
  });
});

describe("finding loans by id or title", () => {
  const loans = [
    { id: "aaaaaaaaaaaaaaaa", title: "Dune" },
    { id: "bbbbbbbbbbbbbbbb", title: "Dune Messiah" },
    { id: "cccccccccccccccc", title: "Les Mise\u0301rables" }, // decomposed é
  ];

  it("matches an exact id first, else every title containing the text, case- and normalisation-insensitive", () => {
    expect(matchLoans(loans, "BBBBBBBBBBBBBBBB").map((l) => l.id)).toEqual(["bbbbbbbbbbbbbbbb"]);
    expect(matchLoans(loans, "dune").map((l) => l.id)).toEqual(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]);
    expect(matchLoans(loans, "MISÉRABLES").map((l) => l.id)).toEqual(["cccccccccccccccc"]);
    expect(matchLoans(loans, "  ")).toEqual([]);
    expect(matchLoans(loans, "emma")).toEqual([]);
  });

  it("prints an aligned table", () => {
    expect(loanTable([{ id: "aaaaaaaaaaaaaaaa", title: "Dune", expires_at: "2026-12-10T10:00:00.000Z", expired: true }])).toBe(
      "ID                TITLE  EXPIRES               STATUS\naaaaaaaaaaaaaaaa  Dune   2026-12-10 10:00 UTC  expired\n",
    );
  });
});
