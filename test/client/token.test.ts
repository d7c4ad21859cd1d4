// The client in token mode: where the token comes from (--token, KNOCK_TOKEN, the stack's secret
// output only when the stack has one), that it replaces SigV4, and that it is never printed;
// `knock open` prints the access link and its QR code.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import QRCode from "qrcode";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { accessLink, terminalQr } from "../../client/lib/access-link";
import { connect } from "../../client/lib/connection";
import type { StackOutputReader } from "../../client/lib/service-address";
import { makeAcsm } from "../handler/harness";
import { cleanup, cliEnv, knock, scratchDir, startStandinService, type StandinService } from "./helpers";

const TOKEN = "Zq3-tV9_kLm2Pw8xRb5YcN1dHs7uJe4aGf6oTi0QwEr";
const FUNCTION_URL = "https://abcdefghijklmnop.lambda-url.us-east-2.on.aws/";
const request = { method: "GET", url: new URL(FUNCTION_URL), headers: { accept: "application/json" } };

/** A Pulumi stack as `pulumi stack output` shows it; records every read and whether it asked for secrets. */
function stack(outputs: Record<string, string>, secrets: Record<string, string> = {}) {
  const reads: string[] = [];
  const read: StackOutputReader = async (name, options) => {
    reads.push(options?.showSecrets ? `${name} --show-secrets` : name);
    if (name in secrets) return options?.showSecrets ? secrets[name] : "[secret]";
    return outputs[name];
  };
  return { read, reads };
}

/** The text without its ANSI colour sequences (ESC [ … m). */
function stripAnsi(text: string): string {
  return text.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), "");
}

afterEach(() => {
  delete process.env.KNOCK_TOKEN;
});

describe("where the client's token comes from", () => {
  it("--token: sent as a Bearer token instead of a SigV4 signature, and not printed", async () => {
    const notes: string[] = [];
    const conn = await connect({ url: FUNCTION_URL, token: TOKEN }, (l) => notes.push(l), stack({}).read);
    expect(await conn.sign(request)).toEqual({ accept: "application/json", authorization: `Bearer ${TOKEN}` });
    expect(notes.join("\n")).toContain("access token from --token");
    expect(notes.join("\n")).not.toContain(TOKEN);
  });

  it("KNOCK_TOKEN stands in for --token", async () => {
    process.env.KNOCK_TOKEN = TOKEN;
    const notes: string[] = [];
    const conn = await connect({ url: FUNCTION_URL }, (l) => notes.push(l), stack({}).read);
    expect((await conn.sign(request)).authorization).toBe(`Bearer ${TOKEN}`);
    expect(notes.join("\n")).toContain("access token from KNOCK_TOKEN");
  });

  it("reads the stack's secret access_token only when the stack has one", async () => {
    const token = stack({ function_url: FUNCTION_URL }, { access_token: TOKEN });
    const conn = await connect({}, () => undefined, token.read);
    expect((await conn.sign(request)).authorization).toBe(`Bearer ${TOKEN}`);
    expect(token.reads).toEqual(["function_url", "access_token", "access_token --show-secrets"]);

    const iam = stack({ function_url: FUNCTION_URL, access_token: "null" });
    const signed = await connect({}, () => undefined, iam.read);
    expect(iam.reads).toEqual(["function_url", "access_token"]);
    expect(signed.sign).not.toBe(conn.sign);
  });

  it("does not hand the stack's token to another service", async () => {
    const other = stack({ function_url: FUNCTION_URL }, { access_token: TOKEN });
    const notes: string[] = [];
    await connect({ url: "https://zzzzzzzzzzzzzzzz.lambda-url.us-east-2.on.aws/" }, (l) => notes.push(l), other.read);
    expect(other.reads).toEqual(["function_url"]);
    expect(notes.join("\n")).toContain("SigV4");
  });
});

describe("the access link", () => {
  it("puts the token in the fragment", () => {
    expect(accessLink(FUNCTION_URL, TOKEN)).toBe(`${FUNCTION_URL}#token=${TOKEN}`);
    expect(accessLink("http://192.168.1.20:9000", TOKEN)).toBe(`http://192.168.1.20:9000/#token=${TOKEN}`);
  });

  it("renders the QR code of exactly that link (read back from the terminal's half blocks)", async () => {
    const link = accessLink(FUNCTION_URL, TOKEN);
    const qr = QRCode.create(link, { errorCorrectionLevel: "M" }).modules;
    // Dark modules are drawn in the foreground: "▀" top, "▄" bottom, "█" both, " " neither.
    const lines = stripAnsi(await terminalQr(link)).split("\n").filter((l) => l.trim() !== "" && !/^▀+$/.test(l.trim()));
    const grid = lines.flatMap((line) => [
      Array.from(line, (c) => c === "▀" || c === "█"),
      Array.from(line, (c) => c === "▄" || c === "█"),
    ]);
    const matchesAt = (dy: number, dx: number) =>
      Array.from({ length: qr.size }, (_, y) => Array.from({ length: qr.size }, (_, x) => grid[y + dy]?.[x + dx] === (qr.get(y, x) === 1)).every(Boolean)).every(Boolean);
    const offsets = [0, 1, 2, 3, 4].flatMap((dy) => [0, 1, 2, 3, 4].map((dx) => [dy, dx]));
    expect(offsets.some(([dy, dx]) => matchesAt(dy, dx))).toBe(true);
  });

});

describe("knock open and knock convert with a token (real processes)", () => {
  let service: StandinService;
  const scratch: string[] = [];
  beforeAll(async () => {
    service = await startStandinService({ accessToken: TOKEN });
  });
  afterAll(async () => {
    await service.stop();
    cleanup(scratch);
  });

  it("knock open --url --token prints the link on stdout and a QR code on stderr", async () => {
    const run = await knock(["open", "--url", "http://192.168.1.20:9000", "--token", TOKEN]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`http://192.168.1.20:9000/#token=${TOKEN}\n`);
    expect(run.stderr).toContain("Scan with the phone's camera");
    expect(run.stderr).toMatch(/[▄▀█]{7}/);
  });

  it("knock open without the Pulumi CLI says so, and how to make the link by hand, and exits 1", async () => {
    const run = await knock(["open"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("pulumi is not installed (not found on PATH)");
    expect(run.stderr).toContain("knock open --url URL --token TOKEN");
  });

  it("knock convert --token converts; without the token the service's 401 names the fix", async () => {
    const dir = scratchDir("knock-token-", scratch);
    const acsm = join(dir, "book.acsm");
    writeFileSync(acsm, makeAcsm({ title: "With Token" }));
    const ok = await knock(["convert", "--url", service.url, "--token", TOKEN, "--out", dir, acsm]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).not.toContain(TOKEN);

    const refused = await knock(["convert", "--url", service.url, "--out", dir, acsm], { env: cliEnv() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Unauthorized: .*access token/);
    expect(refused.stderr).toContain("--token or KNOCK_TOKEN");
  });
});
