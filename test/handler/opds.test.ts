// The OPDS feed (issue 20) through the real handler on the local S3 server: books converted with the
// libgourou stand-ins are listed in an OPDS Catalog 1.2 acquisition feed at /opds/<feed secret>/,
// each acquisition link answers 302 to a presigned link that gives the book's bytes, and a wrong
// secret is answered exactly as a path the service does not have.
import { createHash, randomBytes } from "node:crypto";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../lambda/src/config";
import { OPDS_ACQUISITION_FEED_TYPE } from "../../lambda/src/contract";
import type { HandlerResult } from "../../lambda/src/answer";
import { fakeContext, makeAcsm, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();

/** KOReader's OPDS browser's Accept header (its opdsbrowser asks for OPDS 2 first, then Atom, then anything). */
const KOREADER_ACCEPT = "application/opds+json, application/atom+xml;profile=opds-catalog, */*";
const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

const secretOf = () => randomBytes(32).toString("base64url");
const sha256 = (s: string) => createHash("sha256").update(s).digest();

/** A GET of the Function URL with `accept`, optionally with a Bearer token. */
function get(path: string, accept: string, bearer?: string): unknown {
  const event = urlEvent("GET") as { rawPath: string; headers: Record<string, string>; requestContext: { http: { path: string } } };
  event.rawPath = path;
  event.requestContext.http.path = path;
  event.headers = { accept, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) };
  return event;
}

/** A container whose feed answers to `secret` (and, in TOKEN mode, whose API wants `accessToken`). */
function feedContainer(secret: string | undefined, accessToken?: string) {
  const config = {
    ...loadConfig(),
    ...(secret === undefined ? {} : { opdsFeedTokenSha256: sha256(secret) }),
    ...(accessToken === undefined ? { functionUrlAuth: "NONE" as const } : { accessTokenSha256: sha256(accessToken), functionUrlAuth: "TOKEN" as const }),
  };
  const handle = world.container({ config });
  return (event: unknown): Promise<HandlerResult> => handle(event, fakeContext());
}

async function convert(handle: (event: unknown) => Promise<HandlerResult>, title: string, format?: "application/pdf", bearer?: string): Promise<{ s3_key: string; size_bytes: number; filename: string }> {
  const event = urlEvent("POST", JSON.stringify({ acsm_content: makeAcsm({ title, ...(format ? { format } : {}) }) })) as { headers: Record<string, string> };
  if (bearer !== undefined) event.headers.authorization = `Bearer ${bearer}`;
  const res = await handle(event);
  expect(res.statusCode, res.body).toBe(200);
  return (JSON.parse(res.body) as { output_files: { s3_key: string; size_bytes: number; filename: string }[] }).output_files[0];
}

interface AtomLink { "@_rel"?: string; "@_href": string; "@_type"?: string; "@_length"?: string; "@_title"?: string }
interface AtomEntry { title: string; id: string; updated: string; author?: { name: string }; content: { "#text": string; "@_type": string }; link: AtomLink | AtomLink[] }
interface AtomFeed { id: string; title: string; updated: string; author: { name: string }; link: AtomLink[]; entry?: AtomEntry | AtomEntry[] }

/** The feed as a tree (namespaces kept as prefixes), after checking it is well-formed XML. */
function parseFeed(xml: string): { feed: AtomFeed; entries: AtomEntry[]; xmlns: string } {
  expect(XMLValidator.validate(xml)).toBe(true);
  const tree = new XMLParser({ ignoreAttributes: false, isArray: (name) => name === "entry" }).parse(xml) as { feed: AtomFeed & { "@_xmlns": string } };
  const entries = tree.feed.entry === undefined ? [] : Array.isArray(tree.feed.entry) ? tree.feed.entry : [tree.feed.entry];
  return { feed: tree.feed, entries, xmlns: tree.feed["@_xmlns"] };
}

/** Resolves once the clock has passed the whole second after `ms` (polled; no fixed sleep decides anything). */
async function nextSecond(ms: number): Promise<void> {
  const target = (Math.floor(ms / 1000) + 1) * 1000;
  while (Date.now() < target) await new Promise((done) => setTimeout(done, 20));
}

const linksOf = (entry: AtomEntry): AtomLink[] => (Array.isArray(entry.link) ? entry.link : [entry.link]);
const ACQUISITION = "http://opds-spec.org/acquisition";

describe("the OPDS feed at /opds/<feed secret>/", () => {
  it("is an OPDS 1.2 acquisition feed of the stored books, newest first, whose links give each book's bytes", async () => {
    const secret = secretOf();
    const handle = feedContainer(secret);
    const older = await convert(handle, "Older & Wiser <Book>");
    // S3's LastModified counts whole seconds: the second book is stored in a later second than the first.
    await nextSecond(Date.now());
    const newer = await convert(handle, "Newer Book", "application/pdf");

    const res = await handle(get(`/opds/${secret}/`, KOREADER_ACCEPT));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe(`${OPDS_ACQUISITION_FEED_TYPE};charset=utf-8`);
    expect(res.headers["cache-control"]).toBe("no-store");
    const { feed, entries, xmlns } = parseFeed(res.body);
    // RFC 4287 §4.1.1: an Atom feed element with exactly one id, title, updated, and an author.
    expect(xmlns).toBe("http://www.w3.org/2005/Atom");
    expect(feed.id).toMatch(/^urn:/);
    expect(feed.id).not.toContain(secret);
    expect(typeof feed.title).toBe("string");
    expect(Number.isNaN(Date.parse(feed.updated))).toBe(false);
    expect(feed.author.name).toBeTruthy();
    // OPDS 1.2 §2.6 (one self link), §2.1 (a start link), §2.3 (links to an acquisition feed use its type).
    const self = feed.link.filter((l) => l["@_rel"] === "self");
    expect(self).toHaveLength(1);
    expect(self[0]["@_type"]).toBe(OPDS_ACQUISITION_FEED_TYPE);
    expect(feed.link.find((l) => l["@_rel"] === "start")?.["@_type"]).toBe(OPDS_ACQUISITION_FEED_TYPE);
    // Every link is relative: the secret is never written out, and carries over from the feed's URL.
    for (const l of feed.link) expect(l["@_href"]).not.toMatch(/^[a-z]+:|^\//i);

    // Newest first (OPDS 1.2 §2.5 asks it of complete feeds; this one holds the whole catalog).
    const ours = entries.filter((e) => [older, newer].some((b) => linksOf(e).some((l) => l["@_title"] === b.filename)));
    expect(ours.map((e) => e.title)).toEqual(["Newer Book", "Older & Wiser <Book>"]);
    const times = entries.map((e) => Date.parse(e.updated));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    for (const [entry, book, type] of [[ours[0], newer, "application/pdf"], [ours[1], older, "application/epub+zip"]] as const) {
      // RFC 4287 §4.1.2: each entry has an id, title, updated, and content (it has no alternate link).
      expect(entry.id).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
      expect(entry.author?.name).toBe("Test Author");
      expect(entry.content["@_type"]).toBe("text");
      expect(entry.content["#text"]).toMatch(type === "application/pdf" ? /^PDF, / : /^EPUB, /);
      // OPDS 1.2 §5: an acquisition link with the book's media type; RFC 4287 §4.2.7.6 length.
      const acquisition = linksOf(entry).filter((l) => l["@_rel"] === ACQUISITION);
      expect(acquisition).toHaveLength(1);
      expect(acquisition[0]["@_type"]).toBe(type);
      expect(Number(acquisition[0]["@_length"])).toBe(book.size_bytes);
      const href = acquisition[0]["@_href"];
      expect(href).toMatch(/^books\/[0-9a-f-]{36}$/);

      // The link, resolved against the feed's URL, is a 302 to a presigned link with the book's bytes.
      const target = new URL(href, `https://fn.example/opds/${secret}/`).pathname;
      const redirect = await handle(get(target, KOREADER_ACCEPT));
      expect(redirect.statusCode).toBe(302);
      expect(redirect.body).toBe("");
      const location = redirect.headers.location;
      expect(location).toContain(book.s3_key.split("/").map(encodeURIComponent).join("/"));
      const bytes = await fetch(location);
      expect(bytes.status).toBe(200);
      const body = Buffer.from(await bytes.arrayBuffer());
      expect(body.length).toBe(book.size_bytes);
      expect(bytes.headers.get("content-disposition")).toContain(encodeURIComponent(book.filename).slice(0, 10));
    }
  });

  it("answers a browser with the library page, whose links are the same relative books/<id>", async () => {
    const secret = secretOf();
    const handle = feedContainer(secret);
    const book = await convert(handle, "Page Book");
    const res = await handle(get(`/opds/${secret}/`, BROWSER_ACCEPT));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.body).toContain(">Page Book</a> — Test Author");
    const id = book.s3_key.split("/")[1];
    expect(res.body).toContain(`href="books/${id}"`);
    expect(res.body).not.toContain(secret);
  });

  it("at /opds/<secret> without the slash, prefixes its links so that they still resolve below the secret", async () => {
    const secret = secretOf();
    const handle = feedContainer(secret);
    const book = await convert(handle, "No Slash");
    const res = await handle(get(`/opds/${secret}`, KOREADER_ACCEPT));
    const { entries } = parseFeed(res.body);
    const entry = entries.find((e) => e.title === "No Slash");
    const href = linksOf(entry as AtomEntry).find((l) => l["@_rel"] === ACQUISITION)?.["@_href"] ?? "";
    const target = new URL(href, `https://fn.example/opds/${secret}`).pathname;
    expect(target).toBe(`/opds/${secret}/books/${book.s3_key.split("/")[1]}`);
    expect((await handle(get(target, "*/*"))).statusCode).toBe(302);
  });

  it("answers a wrong secret, and a service without a feed, exactly as a path it does not have", async () => {
    const secret = secretOf();
    const handle = feedContainer(secret);
    const book = await convert(handle, "Hidden");
    const id = book.s3_key.split("/")[1];
    const unknown = await handle(get("/no/such/path", KOREADER_ACCEPT));
    expect(unknown.statusCode).toBe(404);
    const noFeed = feedContainer(undefined);
    for (const [h, path] of [
      [handle, `/opds/${secretOf()}/`],
      [handle, `/opds/${secret.slice(0, -1)}/`],
      [handle, `/opds/${secretOf()}/books/${id}`],
      [noFeed, `/opds/${secret}/`],
      [noFeed, `/opds/${secret}/books/${id}`],
    ] as const) {
      const res = await h(get(path, KOREADER_ACCEPT));
      expect(res.statusCode, path).toBe(404);
      expect(res.headers).toEqual(unknown.headers);
      const { request_id: _a, ...body } = JSON.parse(res.body) as Record<string, unknown>;
      const { request_id: _b, ...expected } = JSON.parse(unknown.body) as Record<string, unknown>;
      expect(body).toEqual(expected);
      expect(JSON.stringify(body)).not.toMatch(/opds/);
    }
    // Another method on a wrong secret's path is not a 405 either (that would say the path exists).
    const post = await handle({ ...(get(`/opds/${secretOf()}/`, "*/*") as object), requestContext: { http: { method: "POST", path: "/opds/x/", protocol: "HTTP/1.1", sourceIp: "203.0.113.9", userAgent: "t" } } });
    expect(post.statusCode).toBe(404);
  });

  it("in TOKEN mode takes the feed secret instead of the access token, and answers a wrong one as any unknown path (401 without the token)", async () => {
    const secret = secretOf();
    const token = secretOf();
    const handle = feedContainer(secret, token);
    await convert(handle, "Token Mode Book", undefined, token);
    expect((await handle(get(`/opds/${secret}/`, KOREADER_ACCEPT))).statusCode).toBe(200);
    // The access token is not the feed's secret.
    expect((await handle(get(`/opds/${token}/`, KOREADER_ACCEPT, token))).statusCode).toBe(404);
    const wrong = await handle(get(`/opds/${secretOf()}/`, KOREADER_ACCEPT));
    const unknown = await handle(get("/no/such/path", KOREADER_ACCEPT));
    expect(unknown.statusCode).toBe(401);
    expect(wrong.statusCode).toBe(unknown.statusCode);
    expect(JSON.parse(wrong.body).error).toBe(JSON.parse(unknown.body).error);
  });

  it("after rotation the old secret's URL answers as an unknown path, the new one lists the same books", async () => {
    const before = secretOf();
    const after = secretOf();
    const first = feedContainer(before);
    await convert(first, "Survives Rotation");
    expect((await first(get(`/opds/${before}/`, KOREADER_ACCEPT))).statusCode).toBe(200);
    // A deploy with a new opds_feed_token_version: the function's next containers know only the new hash.
    const rotated = feedContainer(after);
    expect((await rotated(get(`/opds/${before}/`, KOREADER_ACCEPT))).statusCode).toBe(404);
    const res = await rotated(get(`/opds/${after}/`, KOREADER_ACCEPT));
    expect(parseFeed(res.body).entries.map((e) => e.title)).toContain("Survives Rotation");
  });

  it("answers 404 NoSuchBook, with the secret, for a book the bucket no longer holds", async () => {
    const secret = secretOf();
    const handle = feedContainer(secret);
    const res = await handle(get(`/opds/${secret}/books/00000000-0000-4000-8000-00000000dead`, "*/*"));
    expect(res.statusCode).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ error_type: "NoSuchBook", book_id: "00000000-0000-4000-8000-00000000dead" });
    // A crafted id cannot name another prefix of the bucket.
    const crafted = await handle(get(`/opds/${secret}/books/${encodeURIComponent("../adept")}`, "*/*"));
    expect(JSON.parse(crafted.body)).toMatchObject({ error_type: "NoSuchBook" });
  });
});
