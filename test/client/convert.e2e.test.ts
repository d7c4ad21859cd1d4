// `knock convert` (the real CLI process) against `knock serve` (the real handler with the
// libgourou stand-ins, run in this process on a free port): books land in the output folder,
// names never collide, failures are one clear message each, exit statuses follow clig.dev.
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, cliEnv, knock, scratchDir, startStandinService, type StandinService } from "./helpers";

const scratch: string[] = [];
let service: StandinService;

/** The stand-in's "decrypted book" is its content without the device marker line (libgourou-standin). */
function writeAcsm(dir: string, name: string, options: Parameters<typeof makeAcsm>[0] = {}): string {
  const path = join(dir, name);
  writeFileSync(path, makeAcsm(options));
  return path;
}

beforeAll(async () => {
  service = await startStandinService();
});

afterAll(async () => {
  await service.stop();
  cleanup(scratch);
});

describe("knock convert against knock serve", () => {
  it("saves the book under the title the service gives, with the bytes the service stored", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const out = scratchDir("knock-out-", scratch);
    const acsm = writeAcsm(inputs, "URLLink.acsm", { title: "Les Misérables" });

    const run = await knock(["convert", "--url", service.url, "--out", out, acsm]);

    expect(run.stderr).toContain(`Service ${service.url} (from --url; unsigned (local address))`);
    expect(run.code).toBe(0);
    expect(readdirSync(out)).toEqual(["Les Misérables.epub"]);
    // The same bytes the local output store holds under converted/<request id>/.
    const booksRoot = join(service.dataDir, "books", "converted");
    const [requestDir] = readdirSync(booksRoot).filter((d) => existsSync(join(booksRoot, d, "Les Misérables.epub")));
    const stored = readFileSync(join(booksRoot, requestDir, "Les Misérables.epub"));
    expect(stored.length).toBe(65536);
    expect(readFileSync(join(out, "Les Misérables.epub")).equals(stored)).toBe(true);
    expect(run.stderr).toMatch(/✓ URLLink\.acsm → .*Les Misérables\.epub \(66 KB\)/);
  });

  it("never overwrites: a second book of the same title gets ' (1)', a third ' (2)'", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const out = scratchDir("knock-out-", scratch);
    writeFileSync(join(out, "Same Title.pdf"), "the user's own file");
    const a = writeAcsm(inputs, "a.acsm", { title: "Same Title", format: "application/pdf" });
    const b = writeAcsm(inputs, "b.acsm", { title: "Same Title", format: "application/pdf" });

    const run = await knock(["convert", "--url", service.url, "--out", out, a, b]);

    expect(run.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["Same Title (1).pdf", "Same Title (2).pdf", "Same Title.pdf"]);
    expect(readFileSync(join(out, "Same Title.pdf"), "utf8")).toBe("the user's own file");
    expect(run.stderr).toContain("2 converted, 0 failed");
    // No temporary file is left behind.
    expect(readdirSync(out).filter((n) => n.endsWith(".part"))).toEqual([]);
  });

  it("converts every input, reports each failure with its error type and request id, and exits 1", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const out = scratchDir("knock-out-", scratch);
    const good1 = writeAcsm(inputs, "one.acsm", { title: "First" });
    const expired = writeAcsm(inputs, "old.acsm", { title: "Old", expiration: "2020-01-01T00:00:00+00:00" });
    const good2 = writeAcsm(inputs, "two.acsm", { title: "Second" });
    const missing = join(inputs, "nope.acsm");

    const run = await knock(["convert", "--url", service.url, "--out", out, good1, expired, missing, good2]);

    expect(run.code).toBe(1);
    expect(readdirSync(out).sort()).toEqual(["First.epub", "Second.epub"]);
    expect(run.stderr).toContain("2 converted, 2 failed");
    expect(run.stderr).toMatch(/✗ old\.acsm: AcsmExpired: .*2020/);
    expect(run.stderr).toMatch(/\n {2}request id [0-9a-f-]{36}\.\n/);
    expect(run.stderr).toMatch(/✗ nope\.acsm: no such file\./);
    expect(run.stderr).not.toMatch(/\bat .*\.ts:\d+/); // no stack trace
  });

  it("--json prints one parseable object per book on stdout and nothing else", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const out = scratchDir("knock-out-", scratch);
    const good = writeAcsm(inputs, "good.acsm", { title: "Json Book" });
    const limited = writeAcsm(inputs, "limited.acsm", {
      title: "Limited",
      operatorURL: "https://acs.example-shop.test/fulfillment?adept_error=E_GOOGLE_DEVICE_LIMIT_REACHED",
    });

    const run = await knock(["convert", "--json", "--url", service.url, "--out", out, good, limited]);

    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ input: good, ok: true, filename: "Json Book.epub", size_bytes: 65536, content_type: "application/epub+zip" });
    expect(lines[0].path).toBe(join(out, "Json Book.epub"));
    expect(lines[0].request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines[1]).toMatchObject({ input: limited, ok: false, error_kind: "service", error_type: "DeviceLimitReached" });
    expect(lines[1].request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("explains a service that is not running (connection refused) without a stack trace", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const acsm = writeAcsm(inputs, "x.acsm");
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    const run = await knock(["convert", "--url", "http://127.0.0.1:9", "--out", inputs, acsm]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("Nothing answers at 127.0.0.1:9 (connection refused)");
    expect(run.stderr).toContain("npx knock serve");
  });

  it("explains a host name that does not resolve", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const acsm = writeAcsm(inputs, "x.acsm");
    // .invalid never resolves (RFC 6761); --region because the host is not a Function URL.
    const run = await knock(["convert", "--url", "https://knock.invalid/", "--region", "us-east-1", "--out", inputs, acsm], {
      env: cliEnv({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret" }),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Cannot resolve knock\.invalid \((ENOTFOUND|EAI_AGAIN)\)/);
  });

  it("refuses an --out that is not a writable folder before sending anything", async () => {
    const inputs = scratchDir("knock-in-", scratch);
    const acsm = writeAcsm(inputs, "x.acsm");
    const file = join(inputs, "a-file");
    writeFileSync(file, "");
    const notFolder = await knock(["convert", "--url", service.url, "--out", file, acsm]);
    expect(notFolder.code).toBe(1);
    expect(notFolder.stderr).toContain(`${file} is not a folder`);

    const readOnly = scratchDir("knock-ro-", scratch);
    chmodSync(readOnly, 0o500);
    if (process.getuid?.() !== 0) {
      const denied = await knock(["convert", "--url", service.url, "--out", readOnly, acsm]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/Cannot write into .* \(EACCES\)/);
    }
    expect(statSync(readOnly).mode & 0o777).toBe(0o500);
  });

  it("needs a service address and says where it looks for one (usage: exit 2 for bad flags)", async () => {
    const none = await knock(["convert", "x.acsm"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("No service address: pass --url URL or set KNOCK_URL");

    const fromEnv = await knock(["health"], { env: cliEnv({ KNOCK_URL: service.url }) });
    expect(fromEnv.stderr).toContain(`(from KNOCK_URL;`);
    expect(fromEnv.code).toBe(0);

    const bad = await knock(["convert", "--no-such-flag", "x.acsm"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown option '--no-such-flag'");
    const noArgs = await knock(["convert"]);
    expect(noArgs.code).toBe(2);
  });

  it("knock health prints the converter's version and limits", async () => {
    const run = await knock(["health", "--url", service.url]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("status: ok");
    expect(run.stdout).toContain("converter: Current libgourou version : 0.8.9");
    expect(run.stdout).toContain("download links valid for: 3600 s");
  });

  it("--help of every command shows an example", async () => {
    for (const command of ["convert", "health", "serve"]) {
      const run = await knock([command, "--help"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("Example");
      expect(run.stdout).toContain(`npx knock ${command}`);
    }
  });
});
