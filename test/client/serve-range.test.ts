// `knock serve`'s download links answer Range as the S3 presigned links they stand in for: one byte
// range is 206 with Content-Range and exactly those bytes, an unsatisfiable one 416 with
// `Content-Range: bytes */<size>` and S3's InvalidRange error, several ranges the whole file with
// 200 (Amazon S3 API Reference, GetObject, `Range`: "Amazon S3 doesn't support retrieving multiple
// ranges of data per GET request"), an invalid Range the whole file (RFC 9110 §14.2), and If-Range
// as RFC 9110 §13.1.5 says. The links' signature and expiry checks come first, as before.
// Raw HTTP against the real server module with the libgourou stand-ins (the book is 65536 bytes).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveRange } from "../../client/serve/byte-range";
import { makeAcsm } from "../handler/harness";
import { startStandinService, type StandinService } from "./helpers";
import { rawHttp, type RawAnswer } from "./raw-http";

let service: StandinService;
let port: number;
/** The stored book and the path+query of its download link. */
let book: Buffer;
let link: string;
/** The server's clock: the tests move it past the link's expiry. */
let clockOffsetMs = 0;

beforeAll(async () => {
  service = await startStandinService({ now: () => new Date(Date.now() + clockOffsetMs), downloadUrlExpirySeconds: 600 });
  port = Number(new URL(service.url).port);
  const res = await fetch(service.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: makeAcsm({ title: "Ranged" }) }) });
  expect(res.status).toBe(200);
  const file = ((await res.json()) as { output_files: { download_url: string; s3_key: string }[] }).output_files[0];
  const url = new URL(file.download_url);
  link = `${url.pathname}${url.search}`;
  book = readFileSync(join(service.dataDir, "books", file.s3_key));
  expect(book.length).toBe(65536);
});

afterAll(async () => {
  await service.stop();
});

/** GETs (or HEADs) the link with these extra header lines. */
function download(headers: string[] = [], method = "GET", path = link): Promise<RawAnswer> {
  return rawHttp(port, [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...headers]);
}

function expectWhole(answer: RawAnswer, why: string): void {
  expect(answer.status, why).toBe(200);
  expect(answer.headers["content-range"], why).toBeUndefined();
  expect(answer.headers["accept-ranges"], why).toBe("bytes");
  expect(answer.headers["content-length"], why).toBe("65536");
  expect(answer.body.equals(book), why).toBe(true);
}

function expectPart(answer: RawAnswer, start: number, end: number, why: string): void {
  expect(answer.status, why).toBe(206);
  expect(answer.headers["content-range"], why).toBe(`bytes ${start}-${end}/65536`);
  expect(answer.headers["content-length"], why).toBe(String(end - start + 1));
  expect(answer.headers["accept-ranges"], why).toBe("bytes");
  // The headers the link was signed with still come back on a part.
  expect(answer.headers["content-type"], why).toBe("application/epub+zip");
  expect(answer.headers["content-disposition"], why).toContain('filename="Ranged.epub"');
  expect(answer.body.equals(book.subarray(start, end + 1)), why).toBe(true);
}

describe("Range on knock serve's download links", () => {
  it("answers one byte range with 206 and exactly those bytes: first-last, -suffix, first-, and a last position past the end", async () => {
    expectPart(await download(["Range: bytes=0-99"]), 0, 99, "bytes=0-99");
    expectPart(await download(["Range: bytes=-100"]), 65436, 65535, "bytes=-100");
    expectPart(await download(["Range: bytes=100-"]), 100, 65535, "bytes=100-");
    expectPart(await download(["Range: bytes=65000-70000"]), 65000, 65535, "bytes=65000-70000 (clamped to the end)");
    expectPart(await download(["Range: bytes=-70000"]), 0, 65535, "bytes=-70000 (a suffix longer than the file)");
    expectPart(await download(["Range: bytes=0-65535"]), 0, 65535, "bytes=0-65535 (the whole file is still a 206)");
    expectPart(await download(["Range: Bytes=5-5"]), 5, 5, "the unit is case-insensitive");
    expectPart(await download(["Range: bytes=10-19, "]), 10, 19, "an empty list element is skipped");
  });

  it("answers an unsatisfiable range with 416, Content-Range bytes */<size> and S3's InvalidRange error", async () => {
    for (const range of ["bytes=65536-", "bytes=70000-80000", "bytes=-0"]) {
      const answer = await download([`Range: ${range}`]);
      expect(answer.status, range).toBe(416);
      expect(answer.headers["content-range"], range).toBe("bytes */65536");
      expect(answer.headers["content-type"], range).toBe("application/xml");
      const xml = answer.body.toString("utf8");
      expect(xml, range).toContain("<Code>InvalidRange</Code>");
      expect(xml, range).toContain(`<RangeRequested>${range}</RangeRequested>`);
      expect(xml, range).toContain("<ActualObjectSize>65536</ActualObjectSize>");
    }
  });

  it("sends the whole file with 200 for several ranges (as S3 does) and for a Range it must ignore (RFC 9110 §14.2)", async () => {
    for (const range of ["bytes=0-1,5-6", "bytes=0-99,65536-", "bytes=5-2", "bytes=abc", "bytes=1-2-3", "items=0-1", "bytes 0-1", "bytes=", "bytes=--1"]) {
      expectWhole(await download([`Range: ${range}`]), range);
    }
    expectWhole(await download(), "no Range");
  });

  it("answers HEAD with a range as S3's HeadObject does: the 206 or 416 headers, no body", async () => {
    const part = await download(["Range: bytes=0-99"], "HEAD");
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe("bytes 0-99/65536");
    expect(part.headers["content-length"]).toBe("100");
    expect(part.body.length).toBe(0);
    const past = await download(["Range: bytes=99999-"], "HEAD");
    expect(past.status).toBe(416);
    expect(past.headers["content-range"]).toBe("bytes */65536");
    expect(past.body.length).toBe(0);
  });

  it("honours If-Range: its own ETag or Last-Modified gives the part; another, or a weak tag, gives the whole file", async () => {
    const first = await download();
    const etag = first.headers.etag;
    const lastModified = first.headers["last-modified"];
    expect(etag).toMatch(/^"[0-9a-f-]+"$/);
    expect(lastModified).toMatch(/GMT$/);

    expectPart(await download(["Range: bytes=0-99", `If-Range: ${etag}`]), 0, 99, "its ETag");
    expectPart(await download(["Range: bytes=0-99", `If-Range: ${lastModified}`]), 0, 99, "its Last-Modified");
    expectWhole(await download(["Range: bytes=0-99", 'If-Range: "another"']), "another ETag");
    expectWhole(await download(["Range: bytes=0-99", `If-Range: W/${etag}`]), "a weak tag never matches for If-Range");
    expectWhole(await download(["Range: bytes=0-99", "If-Range: Thu, 01 Jan 1970 00:00:00 GMT"]), "another date");
    // If-Range without Range changes nothing (RFC 9110 §13.1.5: ignored).
    expectWhole(await download(['If-Range: "another"']), "If-Range alone");
  });

  it("resumes an interrupted download: the rest, asked with If-Range, completes exactly the stored bytes", async () => {
    const head = await download(["Range: bytes=0-40959"]);
    expectPart(head, 0, 40959, "first part");
    const rest = await download([`Range: bytes=${head.body.length}-`, `If-Range: ${head.headers.etag}`]);
    expectPart(rest, 40960, 65535, "the rest");
    expect(Buffer.concat([head.body, rest.body]).equals(book)).toBe(true);
  });

  it("checks the link's signature and expiry before the range, exactly as without one", async () => {
    const altered = link.replace(/signature=([0-9a-f])/, (_, c: string) => `signature=${c === "0" ? "1" : "0"}`);
    expect(altered).not.toBe(link);
    const forged = await download(["Range: bytes=0-99"], "GET", altered);
    expect(forged.status).toBe(403);
    expect(forged.body.toString()).toContain("<Code>SignatureDoesNotMatch</Code>");
    expect(forged.headers["content-range"]).toBeUndefined();

    clockOffsetMs = 601_000;
    try {
      const expired = await download(["Range: bytes=0-99"]);
      expect(expired.status).toBe(403);
      expect(expired.body.toString()).toContain("<Message>Request has expired</Message>");
      expect(expired.headers["content-range"]).toBeUndefined();
    } finally {
      clockOffsetMs = 0;
    }
    expectPart(await download(["Range: bytes=0-99"]), 0, 99, "the same link before its expiry");
  });
});

describe("resolveRange", () => {
  it("follows RFC 9110 §14.1.2 at the edges: an empty file satisfies no range, numbers beyond 2^53 still resolve", () => {
    expect(resolveRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
    expect(resolveRange("bytes=-5", 0)).toEqual({ kind: "unsatisfiable" });
    expect(resolveRange("bytes=0-99999999999999999999", 10)).toEqual({ kind: "partial", start: 0, end: 9 });
    expect(resolveRange("bytes=99999999999999999999-", 10)).toEqual({ kind: "unsatisfiable" });
    expect(resolveRange("bytes=-99999999999999999999", 10)).toEqual({ kind: "partial", start: 0, end: 9 });
    expect(resolveRange(undefined, 10)).toEqual({ kind: "whole" });
  });
});
