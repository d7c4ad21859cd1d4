// `knock inspect` through the real CLI: what an ACSM says, read locally with no request (no service
// address is given, and none is needed), the expiry warnings and exit statuses, and the refusals of
// what is not an ACSM, in the same words `knock convert` and the service use.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, knock, scratchDir } from "./helpers";

const SAMPLE = resolve(__dirname, "../fixtures/libgourou/sample-book.acsm");
const scratch: string[] = [];
afterEach(() => cleanup(scratch));

/** Writes `content` to a scratch file and returns its path. */
function file(name: string, content: string | Buffer): string {
  const path = join(scratchDir("knock-inspect-", scratch), name);
  writeFileSync(path, content);
  return path;
}

/** An expiration `ms` from now, written the way shops write it. */
function inSeconds(ms: number): string {
  return new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, "+00:00");
}

const loan = (acsm: string): string => acsm.replace('fulfillmentType="buy"', 'fulfillmentType="loan"');

describe("knock inspect", () => {
  it("shows a purchase's title, format, distributor, operator host, kind and expiry", async () => {
    const path = file("book.acsm", makeAcsm({ title: "Dune", format: "application/pdf", operatorURL: "https://acs.shop.test:8443/fulfillment", expiration: inSeconds(3 * 86_400_000 + 60_000) }));
    const run = await knock(["inspect", path]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Title: +Dune$/m);
    expect(run.stdout).toMatch(/^Format: +PDF$/m);
    expect(run.stdout).toMatch(/^Distributor: +urn:uuid:00000000-0000-4000-8000-000000000001$/m);
    expect(run.stdout).toMatch(/^Operator host: +acs\.shop\.test:8443$/m);
    expect(run.stdout).toMatch(/^Kind: +purchase$/m);
    expect(run.stdout).toMatch(/^Expires: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z \(in 3 days\)$/m);
    // The values start in one column.
    const columns = new Set(run.stdout.trim().split("\n").map((line) => /^[^:]+: +/.exec(line)![0].length));
    expect(columns.size).toBe(1);
  });

  it("tells a loan by the token's fulfillmentType, and says unknown when the token does not say", async () => {
    const lent = await knock(["inspect", file("loan.acsm", loan(makeAcsm({ expiration: inSeconds(86_400_000) })))]);
    expect(lent.code).toBe(0);
    expect(lent.stdout).toMatch(/^Kind: +loan$/m);
    const unsaid = await knock(["inspect", file("odd.acsm", makeAcsm({ expiration: inSeconds(86_400_000) }).replace('fulfillmentType="buy" ', ""))]);
    expect(unsaid.code).toBe(0);
    expect(unsaid.stdout).toMatch(/^Kind: +unknown until fulfilled$/m);
  });

  it("prints one JSON object with the documented fields for --json", async () => {
    const expiration = inSeconds(2 * 86_400_000);
    const run = await knock(["inspect", "--json", file("book.acsm", loan(makeAcsm({ title: "Les Misérables", expiration })))]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    const result = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(result).sort()).toEqual(
      [
        "file",
        "title",
        "author",
        "format",
        "media_type",
        "distributor",
        "resource",
        "operator_host",
        "operator_url",
        "kind",
        "fulfillment_type",
        "expires_at",
        "expires_in_seconds",
        "expired",
        "checked_at",
        "warnings",
      ].sort(),
    );
    expect(result).toMatchObject({
      title: "Les Misérables",
      author: "Test Author",
      format: "EPUB",
      media_type: "application/epub+zip",
      distributor: "urn:uuid:00000000-0000-4000-8000-000000000001",
      operator_host: "acs.example-shop.test",
      operator_url: "https://acs.example-shop.test/fulfillment",
      kind: "loan",
      fulfillment_type: "loan",
      expires_at: new Date(expiration).toISOString(),
      expired: false,
      warnings: [],
    });
    expect(result.resource).toMatch(/^urn:uuid:/);
    expect(result.expires_in_seconds).toBeGreaterThan(2 * 86_400 - 60);
    expect(result.expires_in_seconds).toBeLessThanOrEqual(2 * 86_400);
  });

  it("warns of an expired ACSM and exits 1, as convert does, still showing what it says", async () => {
    const path = file("old.acsm", makeAcsm({ expiration: inSeconds(-2 * 3_600_000 - 60_000) }));
    const run = await knock(["inspect", path]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^Expires: +\S+ \(expired 2 hours ago\)$/m);
    expect(run.stderr).toMatch(/^knock: this ACSM expired at \S+ \(2 hours ago\): download a fresh ACSM from the shop or library\.\n$/);

    const json = await knock(["inspect", "--json", path]);
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as { expired: boolean; expires_in_seconds: number; warnings: { code: string }[] };
    expect(result.expired).toBe(true);
    expect(result.expires_in_seconds).toBeLessThan(0);
    expect(result.warnings.map((w) => w.code)).toEqual(["expired"]);
  });

  it("warns when the ACSM expires within the hour, and exits 0", async () => {
    const run = await knock(["inspect", file("soon.acsm", makeAcsm({ expiration: inSeconds(30 * 60_000) }))]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Expires: +\S+ \(in (29|30) minutes\)$/m);
    expect(run.stderr).toMatch(/^knock: warning: this ACSM expires in (29|30) minutes: convert it now, or download a fresh one\.\n$/);
  });

  it("warns that the clock looks wrong when the expiry is implausibly far away", async () => {
    const run = await knock(["inspect", "--json", SAMPLE]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { title: string; kind: string; warnings: { code: string; message: string }[] };
    expect(result).toMatchObject({ title: "Les Misérables", kind: "loan" });
    expect(result.warnings.map((w) => w.code)).toEqual(["clock"]);
    expect(run.stderr).toMatch(/^knock: warning: the ACSM expires in \d+ years, far later than fulfilment tokens last: check this machine's clock/);
  });

  it("refuses a PDF given instead, with convert's first line and the service's next step", async () => {
    const path = file("book.pdf", Buffer.concat([Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1"), Buffer.alloc(300 * 1024, 0x20)]));
    const run = await knock(["inspect", path]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(`knock: ${path}: this is a PDF, not an ACSM file.\n  Send the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.\n`);
  });

  it("refuses a small web page saved instead of the ACSM", async () => {
    const path = file("URLLink.acsm", "<!DOCTYPE html>\n<html><body>Your download</body></html>\n");
    const run = await knock(["inspect", path]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^knock: .*URLLink\.acsm: this is a web page \(HTML\), not an ACSM file: the download may have saved the shop's page instead of the file\.\n {2}Send /);
  });

  it("refuses a malformed file, naming the file and the problem, with no stack trace", async () => {
    const path = file("broken.acsm", makeAcsm().replace("</fulfillmentToken>", ""));
    const run = await knock(["inspect", path]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(new RegExp(`^knock: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: the ACSM is not well-formed XML \\(.+\\)\\.\\n$`));
  });

  it("refuses a missing file and a folder", async () => {
    const dir = scratchDir("knock-inspect-", scratch);
    const missing = await knock(["inspect", join(dir, "nope.acsm")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`knock: ${join(dir, "nope.acsm")}: no such file.\n`);
    const folder = await knock(["inspect", dir]);
    expect(folder.code).toBe(1);
    expect(folder.stderr).toBe(`knock: ${dir}: is a folder, not an .acsm file.\n`);
  });

  it("is a usage error without a file", async () => {
    const run = await knock(["inspect"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/missing required argument 'acsm'/);
  });
});
