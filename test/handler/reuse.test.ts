// The same ACSM twice gives the same book (issue 19): the real handler on the local S3 server with
// S3's conditional-request rules, the libgourou stand-ins and the fake distributor, which counts the
// fulfilments (each one is a `POST <operator path>/Fulfill` through the egress proxy).
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createS3Client } from "../../lambda/src/handler";
import { loadConfig } from "../../lambda/src/config";
import { acsmClaimKey, acsmIndexKey } from "../../lambda/src/contract";
import { lifecycleExpiry, s3Objects } from "../../lambda/src/object-store";
import { fileObjects } from "../../client/serve/file-objects";
import { acsmIdentity } from "../../lambda/src/reuse";
import { OUTPUT_BUCKET, fakeContext, makeAcsm, urlEvent } from "./harness";
import { handlerWorld } from "./world";

const world = handlerWorld();

interface Answer {
  readonly statusCode: number;
  readonly out: {
    readonly reused?: boolean;
    readonly converted_at?: string;
    readonly loan?: { readonly id: string };
    readonly output_files: readonly { readonly s3_key: string; readonly download_url: string; readonly filename: string; readonly size_bytes: number; readonly expires_at: string }[];
  };
}

/** An ACSM whose operator path is its own, so this test's fulfilments can be counted apart. */
function ownAcsm(title: string, options: { loan?: boolean } = {}) {
  const operatorPath = `shop-${randomUUID()}`;
  const acsm = makeAcsm({ title, operatorURL: `http://acs.example-shop.test/${operatorPath}`, expiration: "2099-12-10T10:00:00+00:00" });
  return { acsm: options.loan ? acsm.replace('fulfillmentType="buy"', 'fulfillmentType="loan"') : acsm, fulfilments: () => world.distributor.hits.filter((h) => h === `POST /${operatorPath}/Fulfill`).length };
}

async function convert(handle: ReturnType<typeof world.container>, acsm: string): Promise<Answer> {
  const res = await handle(urlEvent("POST", JSON.stringify({ acsm_content: acsm })), fakeContext());
  return { statusCode: res.statusCode, out: JSON.parse(res.body) as Answer["out"] };
}

async function download(url: string): Promise<Buffer> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const outputObjects = () => s3Objects(createS3Client(loadConfig()), OUTPUT_BUCKET);

describe("the same ACSM twice", () => {
  it("fulfils once: the second request answers 200 with a fresh link to the same book and reused: true", async () => {
    const { acsm, fulfilments } = ownAcsm("Twice Told");
    const handle = world.container();
    const first = await convert(handle, acsm);
    expect(first.statusCode).toBe(200);
    expect(first.out.reused).toBeUndefined();
    expect(fulfilments()).toBe(1);

    // Another (cold) container: what it knows comes from the output bucket.
    const second = await convert(world.container(), acsm);
    expect(second.statusCode).toBe(200);
    expect(second.out.reused).toBe(true);
    expect(Date.parse(second.out.converted_at ?? "")).not.toBeNaN();
    expect(fulfilments()).toBe(1);
    const [a] = first.out.output_files;
    const [b] = second.out.output_files;
    expect(b).toMatchObject({ s3_key: a.s3_key, filename: "Twice Told.epub", size_bytes: 65536 });
    // Signed by the second request: valid for the whole configured time from then.
    expect(Date.parse(b.expires_at)).toBeGreaterThanOrEqual(Date.parse(a.expires_at));
    expect((await download(b.download_url)).equals(await download(a.download_url))).toBe(true);
    // The index and the released claim are under converted/ (the role's only prefix there).
    const identity = acsmIdentity(acsm, `http://acs.example-shop.test/${/shop-[0-9a-f-]+/.exec(acsm)?.[0]}`);
    expect(JSON.parse((await outputObjects().get(acsmIndexKey(identity)))!.body.toString())).toMatchObject({ key: a.s3_key, size_bytes: 65536 });
    expect(JSON.parse((await outputObjects().get(acsmClaimKey(identity)))!.body.toString())).toMatchObject({ state: "released" });
  });

  it("converts once when two identical requests arrive at once: both 200, one of them reused", async () => {
    await convert(world.container(), ownAcsm("Warm Up").acsm); // the device exists before the race
    const { acsm, fulfilments } = ownAcsm("At Once");
    const [x, y] = await Promise.all([convert(world.container(), acsm), convert(world.container(), acsm)]);
    expect([x.statusCode, y.statusCode]).toEqual([200, 200]);
    expect(fulfilments()).toBe(1);
    expect([x.out.reused, y.out.reused].filter((r) => r === true)).toHaveLength(1);
    expect(x.out.output_files[0].s3_key).toBe(y.out.output_files[0].s3_key);
    expect(world.logs.some((l) => /another request is converting this ACSM/.test(l))).toBe(true);
  });

  it("converts again once the book has expired (the lifecycle removed it), and reuses the new one after", async () => {
    const { acsm, fulfilments } = ownAcsm("Gone Again");
    const handle = world.container();
    const first = await convert(handle, acsm);
    await outputObjects().delete(first.out.output_files[0].s3_key); // as the bucket's lifecycle would
    const second = await convert(handle, acsm);
    expect(second.statusCode).toBe(200);
    expect(second.out.reused).toBeUndefined();
    expect(fulfilments()).toBe(2);
    expect(second.out.output_files[0].s3_key).not.toBe(first.out.output_files[0].s3_key);
    expect((await download(second.out.output_files[0].download_url)).length).toBe(65536);
    const third = await convert(handle, acsm);
    expect(third.out).toMatchObject({ reused: true });
    expect(third.out.output_files[0].s3_key).toBe(second.out.output_files[0].s3_key);
    expect(fulfilments()).toBe(2);
  });

  it("keeps a loaned book's loan in the reused answer", async () => {
    const { acsm, fulfilments } = ownAcsm("Lent Twice", { loan: true });
    const handle = world.container();
    const first = await convert(handle, acsm);
    expect(first.out.loan?.id).toMatch(/^[0-9a-f]{16}$/);
    const second = await convert(handle, acsm);
    expect(second.out).toMatchObject({ reused: true, loan: first.out.loan });
    expect(fulfilments()).toBe(1);
    // Returned to the library (here: forgotten), the loan's book is not handed out again.
    const path = `/loans/${first.out.loan!.id}`;
    const event = urlEvent("DELETE") as { rawPath: string; requestContext: { http: { path: string } } };
    event.rawPath = path;
    event.requestContext.http.path = path;
    const forgot = await handle(event, fakeContext());
    expect(forgot.statusCode).toBe(200);
    const third = await convert(handle, acsm);
    expect(third.statusCode).toBe(200);
    expect(third.out.reused).toBeUndefined();
    expect(fulfilments()).toBe(2);
  });
});

describe("when the reuse index cannot be read", () => {
  it("converts all the same (an object store refusing, e.g. 403 without s3:ListBucket, costs a fulfilment, not the book)", async () => {
    const stores = world.stores();
    const index = stores.output.reuse!;
    const refusing = { ...index, read: async () => { throw new Error("AccessDenied"); } };
    const handle = world.container({ stores: { ...stores, output: { ...stores.output, reuse: refusing } } });
    const { acsm, fulfilments } = ownAcsm("Refused Look");
    const res = await convert(handle, acsm);
    expect(res.statusCode).toBe(200);
    expect(res.out.reused).toBeUndefined();
    expect(fulfilments()).toBe(1);
    expect(world.logs.some((l) => /could not look for an earlier conversion of this ACSM/.test(l))).toBe(true);
    // It was recorded all the same: a container that can read the index reuses it.
    expect((await convert(world.container(), acsm)).out.reused).toBe(true);
    expect(fulfilments()).toBe(1);
  });
});

describe("an ACSM's identity", () => {
  it("is the operator and the transaction: the same order's token downloaded again is the same ACSM", () => {
    const acsm = makeAcsm({ title: "Same Order" });
    const again = acsm.replace(/<expiration>[^<]*<\/expiration>/, "<expiration>2099-01-01T00:00:00+00:00</expiration>");
    const operator = "https://acs.example-shop.test/fulfillment";
    expect(acsmIdentity(again, operator)).toBe(acsmIdentity(acsm, operator));
    expect(acsmIdentity(acsm, operator)).toMatch(/^[0-9a-f]{64}$/);
    expect(acsmIdentity(acsm, "https://acs.other-shop.test/fulfillment")).not.toBe(acsmIdentity(acsm, operator));
  });

  it("falls back to a hash of the whole document for a token without <transaction>", async () => {
    const base = makeAcsm({ title: "No Transaction", operatorURL: `http://acs.example-shop.test/shop-${randomUUID()}`, expiration: "2099-12-10T10:00:00+00:00" });
    const acsm = base.replace(/\s*<transaction>[^<]*<\/transaction>/, "");
    const operatorPath = /shop-[0-9a-f-]+/.exec(acsm)![0];
    const fulfilments = () => world.distributor.hits.filter((h) => h === `POST /${operatorPath}/Fulfill`).length;
    const operator = `http://acs.example-shop.test/${operatorPath}`;
    expect(acsmIdentity(acsm, operator)).not.toBe(acsmIdentity(acsm.replace("No Transaction", "Other"), operator));
    const handle = world.container();
    expect((await convert(handle, acsm)).out.reused).toBeUndefined();
    expect((await convert(handle, acsm)).out.reused).toBe(true);
    // Any other document (here another expiration) is another ACSM.
    const changed = acsm.replace("2099-12-10T10:00:00+00:00", "2099-12-11T10:00:00+00:00");
    expect((await convert(handle, changed)).out.reused).toBeUndefined();
    expect(fulfilments()).toBe(2);
  });
});

describe("the object store's head, by which a reuse checks the book is still there", () => {
  it("gives an object's last change, and nothing for a missing key or a folder, on S3 and on a data folder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "knock-objects-"));
    try {
      for (const objects of [outputObjects(), fileObjects(dir)]) {
        const base = `converted/head-${randomUUID()}`;
        const before = Date.now();
        await objects.put(`${base}/Book.epub`, "bytes", "application/epub+zip");
        const head = await objects.head(`${base}/Book.epub`);
        expect(head?.lastModified.getTime()).toBeGreaterThanOrEqual(before - 2000);
        expect(head?.expiresAt).toBeUndefined(); // no lifecycle rule here
        expect(await objects.head(`${base}/Other.epub`)).toBeUndefined();
        expect(await objects.head(base)).toBeUndefined();
      }
      mkdirSync(join(dir, "converted", "folder"), { recursive: true });
      expect(await fileObjects(dir).head("converted/folder")).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads S3's x-amz-expiration (a lifecycle rule's expiry date)", () => {
    expect(lifecycleExpiry('expiry-date="Fri, 25 Dec 2026 00:00:00 GMT", rule-id="expire-converted"')).toEqual(new Date("2026-12-25T00:00:00Z"));
    expect(lifecycleExpiry(undefined)).toBeUndefined();
    expect(lifecycleExpiry("nonsense")).toBeUndefined();
  });
});

describe("a book close to its lifecycle expiry", () => {
  const expiringIn = (ms: number) => {
    const stores = world.stores();
    const index = stores.output.reuse!;
    const book: typeof index.book = async (key) => {
      const head = await index.book(key);
      return head && { ...head, expiresAt: new Date(Date.now() + ms) };
    };
    return world.container({ stores: { ...stores, output: { ...stores.output, reuse: { ...index, book } } } });
  };

  it("is linked no longer than it lives, and converted anew when it has under a minute left", async () => {
    const { acsm, fulfilments } = ownAcsm("Nearly Gone");
    await convert(world.container(), acsm);
    const soon = await convert(expiringIn(600_000), acsm);
    expect(soon.out.reused).toBe(true);
    expect(Date.parse(soon.out.output_files[0].expires_at)).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(fulfilments()).toBe(1);
    const tooSoon = await convert(expiringIn(30_000), acsm);
    expect(tooSoon.out.reused).toBeUndefined();
    expect(fulfilments()).toBe(2);
  });
});
