// `knock convert` of the same ACSM twice against `knock serve` (the real handler on its data folder's
// object store, client/serve/file-objects.ts): the second run gets the book the first one converted,
// says so in one line, and the stand-in distributor sees one fulfilment.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, knock, scratchDir, startStandinService, type StandinService } from "./helpers";

const scratch: string[] = [];
let service: StandinService;

beforeAll(async () => {
  service = await startStandinService();
});

afterAll(async () => {
  await service.stop();
  cleanup(scratch);
});

describe("knock convert of an ACSM converted before", () => {
  it("prints that it reused the book, saves the same bytes, and the distributor fulfils once", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const operatorPath = `shop-${randomUUID()}`;
    const acsm = join(inputs, "order.acsm");
    writeFileSync(acsm, makeAcsm({ title: "Told Twice", operatorURL: `http://acs.example-shop.test/${operatorPath}`, expiration: "2099-12-10T10:00:00+00:00" }));
    const fulfilments = () => service.distributor.hits.filter((h) => h === `POST /${operatorPath}/Fulfill`).length;

    const out1 = scratchDir("knock-out-", scratch);
    const first = await knock(["convert", "--url", service.url, "--out", out1, acsm]);
    expect(first.code).toBe(0);
    expect(first.stderr).not.toMatch(/reused/);
    expect(fulfilments()).toBe(1);

    const out2 = scratchDir("knock-out-", scratch);
    const second = await knock(["convert", "--url", service.url, "--out", out2, "--json", acsm]);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/^knock: reused the book converted at \d{4}-\d\d-\d\dT[\d:.]+Z; no new fulfilment$/m);
    expect(JSON.parse(second.stdout.trim())).toMatchObject({ ok: true, reused: true, filename: "Told Twice.epub" });
    expect(fulfilments()).toBe(1);
    expect(readFileSync(join(out2, "Told Twice.epub")).equals(readFileSync(join(out1, "Told Twice.epub")))).toBe(true);

    // The data folder holds one book for it, and the index beside the books.
    const booksRoot = join(service.dataDir, "books", "converted");
    expect(readdirSync(booksRoot).filter((d) => existsSync(join(booksRoot, d, "Told Twice.epub")))).toHaveLength(1);
    expect(readdirSync(join(booksRoot, "by-acsm")).some((n) => /^[0-9a-f]{64}\.json$/.test(n))).toBe(true);
  });
});
