// `knock loans` and `knock return` (the real CLI process) against `knock serve` (the real handler
// with the libgourou stand-ins and the local loan store): a converted loan is listed, found by id or
// by part of its title, returned only after confirmation (--yes, or an answer on a terminal), and
// the loans outlive a restart of the service.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, cliEnv, KNOCK_BIN, knock, startStandinService, type StandinService } from "./helpers";

const scratch: string[] = [];
let service: StandinService;

/** A loan's fulfillment token and the id libgourou gives it (first 16 hex of SHA-1 of `urn:uuid:<transaction>`). */
function loanAcsm(title: string): { acsm: string; id: string } {
  const acsm = makeAcsm({ title, expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  return { acsm, id: createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16) };
}

async function convertLoan(title: string): Promise<string> {
  const { acsm, id } = loanAcsm(title);
  const res = await fetch(service.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: acsm }) });
  const answer = (await res.json()) as { loan?: { id: string } };
  expect(res.status).toBe(200);
  expect(answer.loan?.id).toBe(id);
  return id;
}

/**
 * Waits until a file written now gets a later modification time than loan `id`'s token: the store
 * orders loans by that time, which advances in steps (a clock tick, or a whole second on some file
 * systems), so two loans stored within one step would tie.
 */
async function untilStoredAfter(id: string): Promise<void> {
  const stored = statSync(join(service.dataDir, "adept", "loans", `${id}.xml`)).mtimeMs;
  const probe = join(service.dataDir, "mtime-probe");
  await vi.waitFor(
    () => {
      rmSync(probe, { force: true });
      writeFileSync(probe, "");
      expect(statSync(probe).mtimeMs).toBeGreaterThan(stored);
    },
    { timeout: 30_000, interval: 5 },
  );
  rmSync(probe);
}

function storedIds(): string[] {
  const dir = join(service.dataDir, "adept", "loans");
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".xml")).map((n) => n.slice(0, -4)).sort() : [];
}

/** Runs `knock ARGS` on a pseudo-terminal (util-linux `script`), typing `input`. */
function knockOnTerminal(args: string[], input: string): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, KNOCK_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const child = spawn("script", ["-qec", command, "/dev/null"], { env: cliEnv(), stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
    // Answer once the question is on the screen, as a person would.
    if (output.includes("[y/N]") && input !== "") {
      child.stdin.write(input);
      input = "";
    }
  });
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((done) => child.on("close", (code) => done({ code, output })));
}

const hasScript = spawnSync("script", ["--version"]).status === 0;
if (!hasScript) console.warn("skipping the terminal test of knock return: util-linux `script` is missing (apt-get install -y bsdutils, which .ci/run does)");

beforeAll(async () => {
  service = await startStandinService();
});

afterAll(async () => {
  await service.stop();
  cleanup(scratch);
});

beforeEach(async () => {
  // Each test starts from no loans: forget whatever the previous one left.
  for (const id of storedIds()) await fetch(`${service.url}/loans/${id}`, { method: "DELETE" });
});

describe("knock loans", () => {
  it("prints a table of the loans, newest first, and --json the service's answer; purchases are not loans", async () => {
    const older = await convertLoan("The Time Machine");
    await untilStoredAfter(older);
    const newer = await convertLoan("Les Misérables, tome premier : Fantine (édition intégrale illustrée)");
    const bought = await fetch(service.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ acsm_content: makeAcsm({ title: "Bought" }) }) });
    expect(bought.status).toBe(200);

    const run = await knock(["loans", "--url", service.url]);
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID {16}TITLE +EXPIRES {15}STATUS$/);
    expect(lines.slice(1).map((l) => l.slice(0, 16))).toEqual([newer, older]);
    expect(lines[1]).toContain("Les Misérables, tome premier : Fantine…");
    expect(lines[2]).toMatch(/The Time Machine +2099-12-10 10:00 UTC {2}on loan$/);

    const json = await knock(["loans", "--url", service.url, "--json"]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { count: number; loans: { id: string; title: string; expired: boolean }[] };
    expect(parsed.count).toBe(2);
    expect(parsed.loans.map((l) => l.id)).toEqual([newer, older]);
    expect(parsed.loans[1]).toMatchObject({ title: "The Time Machine", expired: false });
  });

  it("says so when there are no loans", async () => {
    const run = await knock(["loans", "--url", service.url]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^No loans/);
  });

  it("lists an unreadable stored token as such, with the way out, without failing", async () => {
    const good = await convertLoan("Readable");
    writeFileSync(join(service.dataDir, "adept", "loans", "00000000000000bb.xml"), "<loanToken><id>cut");
    const run = await knock(["loans", "--url", service.url]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${good}  Readable`));
    expect(run.stdout).toMatch(/00000000000000bb {2}\(unreadable token\) +unknown +unreadable/);
    expect(run.stderr).toContain("knock return --forget 00000000000000bb");
  });

  it("keeps the loans across a restart of knock serve", async () => {
    const id = await convertLoan("Survivor");
    await service.stop();
    service = await startStandinService({ dataDir: service.dataDir, stateDir: service.stateDir });
    const run = await knock(["loans", "--url", service.url, "--json"]);
    expect((JSON.parse(run.stdout) as { loans: { id: string }[] }).loans.map((l) => l.id)).toEqual([id]);
  });
});

describe("knock return", () => {
  it("refuses without --yes when there is no terminal to ask on (exit 2), and returns nothing", async () => {
    const id = await convertLoan("The Time Machine");
    const run = await knock(["return", "--url", service.url, "time machine"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/needs confirmation.*pass --yes/);
    expect(storedIds()).toEqual([id]);
  });

  it("returns the loan a part of its title names with --yes, and a second return finds nothing", async () => {
    const id = await convertLoan("The Time Machine");
    const other = await convertLoan("Dracula");
    const run = await knock(["return", "--url", service.url, "--yes", "TIME mach"]);
    expect(run.stderr).toBe(`Service ${service.url} (from --url; unsigned (local address))\n`);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`Returned ${id}  The Time Machine\n`);
    expect(storedIds()).toEqual([other]);

    const again = await knock(["return", "--url", service.url, "--yes", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/No loan matches "[0-9a-f]{16}".*knock loans/);
  });

  it("returns by id, printing one JSON object per loan with --json", async () => {
    const id = await convertLoan("By Id");
    const run = await knock(["return", "--url", service.url, "--yes", "--json", id]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual([{ id, title: "By Id", action: "returned", ok: true }]);
    expect(storedIds()).toEqual([]);
  });

  it("forgets a loan with --forget, without telling the library", async () => {
    const id = await convertLoan("Forget Me");
    const egressBefore = service.logs.filter((l) => l.includes('"message":"egress"')).length;
    const run = await knock(["return", "--url", service.url, "--yes", "--forget", "forget"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`Forgot ${id}  Forget Me\n`);
    expect(storedIds()).toEqual([]);
    expect(service.logs.filter((l) => l.includes('"message":"egress"')).length).toBe(egressBefore);
  });

  it("reports the service's refusal per loan and exits 1", async () => {
    writeFileSync(
      join(service.dataDir, "adept", "loans", "1111111111111111.xml"),
      "<loanToken><id>urn:uuid:x</id><operatorURL>https://acs.library.test/f?adept_error=E_ADEPT_DISTRIBUTOR_AUTH</operatorURL>" +
        "<validity>2099-01-01T00:00:00+00:00</validity><name>Refused</name></loanToken>",
    );
    const run = await knock(["return", "--url", service.url, "--yes", "--json", "refused"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: "1111111111111111", ok: false, error_type: "LoanReturnRefused" });
    expect(run.stderr).toContain("E_ADEPT_DISTRIBUTOR_AUTH");
    expect(run.stderr).toContain("knock return --forget");
    expect(storedIds()).toEqual(["1111111111111111"]);
  });

  it.skipIf(!hasScript)("on a terminal lists every loan the title matches and asks; no keeps them, yes returns them all", async () => {
    const a = await convertLoan("Dune");
    const b = await convertLoan("Dune Messiah");
    const c = await convertLoan("Emma");

    const declined = await knockOnTerminal(["return", "--url", service.url, "dune"], "n\n");
    expect(declined.output).toContain(`${a}  Dune  (ends 2099-12-10 10:00 UTC)`);
    expect(declined.output).toContain(`${b}  Dune Messiah  (ends 2099-12-10 10:00 UTC)`);
    expect(declined.output).toMatch(/Return these 2 loans to the library\?.*\[y\/N\]/);
    expect(declined.output).toContain("Nothing done.");
    // Declining is the user's answer, not a failure.
    expect(declined.code).toBe(0);
    expect(storedIds()).toEqual([a, b, c].sort());

    const accepted = await knockOnTerminal(["return", "--url", service.url, "dune"], "y\n");
    expect(accepted.code).toBe(0);
    expect(accepted.output).toContain(`Returned ${a}  Dune`);
    expect(accepted.output).toContain(`Returned ${b}  Dune Messiah`);
    expect(storedIds()).toEqual([c]);
  });

  it("two concurrent returns of one loan against knock serve: one succeeds, the other gets 404 or 409", async () => {
    const id = await convertLoan("Contested");
    const [x, y] = await Promise.all([1, 2].map(() => fetch(`${service.url}/loans/${id}/return`, { method: "POST" })));
    expect([x.status, y.status].sort()[0]).toBe(200);
    expect([404, 409]).toContain([x.status, y.status].sort()[1]);
    expect(storedIds()).toEqual([]);
    expect(readdirSync(join(service.dataDir, "adept", "loans"))).toEqual([]);
  });
});

describe("knock serve's answers on the loan routes", () => {
  it("passes the handler's Allow header of a 405 through to the HTTP response", async () => {
    for (const [method, path, allow] of [["PUT", "/loans", "GET"], ["GET", "/loans/0123456789abcdef/return", "POST"], ["PATCH", "/loans/0123456789abcdef", "DELETE"], ["PUT", "/", "GET, POST"]]) {
      const res = await fetch(`${service.url}${path}`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe(allow);
      expect(((await res.json()) as { error_type: string }).error_type).toBe("MethodNotAllowed");
    }
  });
});
