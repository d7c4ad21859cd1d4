// What the real `knock` process says when something is wrong (issue 17: "the client says wrong or
// unhelpful things"): each message says what happened and what to do, fits where it runs (knock
// serve or the cloud), and never points back at itself. Against `knock serve` run in this process
// with the stand-ins, a few plain 127.0.0.1 servers, and nothing beyond 127.0.0.1.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalService, type LocalService } from "../../client/serve/local-service";
import { makeAcsm, testEgress } from "../handler/harness";
import { cleanup, cliEnv, KNOCK_BIN, knock, scratchDir, startKnock, startStandinService, type StandinService } from "./helpers";

const TOKEN = "messages-test-token-0123456789abcdefghijklmnop";
const scratch: string[] = [];
/** `knock serve` asking for a token, with the stand-ins. */
let withToken: StandinService;
/** `knock serve` without converter tools. */
let noTools: LocalService;
/** A server on 127.0.0.1 that answers every request 200 `{}`: not a knock-lambda service. */
let notKnock: Server;
let notKnockUrl: string;

beforeAll(async () => {
  withToken = await startStandinService({ accessToken: TOKEN });
  noTools = await startLocalService({ port: 0, dataDir: scratchDir("knock-msg-data-", scratch), toolsDir: scratchDir("knock-msg-notools-", scratch), log: () => undefined });
  notKnock = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  await new Promise<void>((done) => notKnock.listen(0, "127.0.0.1", done));
  notKnockUrl = `http://127.0.0.1:${(notKnock.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await withToken?.stop();
  await noTools?.close();
  await new Promise<void>((done) => notKnock.close(() => done()));
  cleanup(scratch);
});

/** Converts a loan ACSM on `service` (with its token) and returns the loan's id. */
async function convertLoan(service: StandinService, title: string): Promise<string> {
  const acsm = makeAcsm({ title, expiration: "2099-12-10T10:00:00+00:00" }).replace('fulfillmentType="buy"', 'fulfillmentType="loan"');
  const transaction = /<transaction>([^<]+)<\/transaction>/.exec(acsm)![1];
  const res = await fetch(service.url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ acsm_content: acsm }) });
  expect(res.status).toBe(200);
  return createHash("sha1").update(`urn:uuid:${transaction}`).digest("hex").slice(0, 16);
}

/** An input file for `knock convert`. */
function inputFile(name: string, content: string | Buffer): string {
  const file = join(scratchDir("knock-msg-in-", scratch), name);
  writeFileSync(file, content);
  return file;
}

/** The requests `service` logged so far (`POST / 200 …`). */
function posts(service: StandinService): string[] {
  return service.logs.filter((l) => / POST \/ \d{3} /.test(l));
}

describe("--token on every command that talks to the service", () => {
  it("knock loans and knock return take --token (and KNOCK_TOKEN), and their help lists it, as convert's and health's do", async () => {
    const id = await convertLoan(withToken, "Token Loan");
    const listed = await knock(["loans", "--url", withToken.url, "--token", TOKEN, "--json"]);
    expect(listed.stderr).not.toContain("unknown option");
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { loans: { id: string }[] }).loans.map((l) => l.id)).toContain(id);

    const fromEnv = await knock(["loans", "--url", withToken.url], { env: cliEnv({ KNOCK_TOKEN: TOKEN }) });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stderr).toContain("access token from KNOCK_TOKEN");

    const returned = await knock(["return", "--url", withToken.url, "--token", TOKEN, "--yes", id]);
    expect(returned.code).toBe(0);
    expect(returned.stdout).toContain(`Returned ${id}  Token Loan`);

    for (const command of ["convert", "health", "loans", "return", "open"]) {
      const help = await knock([command, "--help"]);
      expect({ command, token: /--token <token>/.test(help.stdout) }).toEqual({ command, token: true });
    }
  });

  it("without the token, loans' 401 tells to pass --token, which that command now takes", async () => {
    const run = await knock(["loans", "--url", withToken.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("Unauthorized:");
    expect(run.stderr).toContain("--token or KNOCK_TOKEN");
  });
});

describe("knock return's confirmation", () => {
  it("says Returning / Forgetting in full when there is no terminal to ask on", async () => {
    const id = await convertLoan(withToken, "Unconfirmed");
    const ret = await knock(["return", "--url", withToken.url, "--token", TOKEN, id]);
    expect(ret.code).toBe(2);
    expect(ret.stderr).toContain("knock: Returning a loan needs confirmation and there is no terminal to ask on: pass --yes.");
    const forget = await knock(["return", "--forget", "--url", withToken.url, "--token", TOKEN, id]);
    expect(forget.code).toBe(2);
    expect(forget.stderr).toContain("knock: Forgetting a loan needs confirmation and there is no terminal to ask on: pass --yes.");
    expect(forget.stderr).not.toContain("Forgeting");
  });

  it("a declined return on a terminal is the user's answer, not a failure: exit 0, loan kept", async () => {
    const id = await convertLoan(withToken, "Declined");
    const command = [process.execPath, KNOCK_BIN, "return", "--url", withToken.url, "--token", TOKEN, id].map((a) => `'${a}'`).join(" ");
    // util-linux `script` gives the CLI a pseudo-terminal to ask on; "n" is typed once the question shows.
    const child = spawn("script", ["-qec", command, "/dev/null"], { env: cliEnv(), stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    let answered = false;
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
      if (!answered && output.includes("[y/N]")) {
        answered = true;
        child.stdin.write("n\n");
      }
    });
    const code = await new Promise<number | null>((done) => child.on("close", done));
    expect(output).toContain("Nothing done.");
    expect(code).toBe(0);
    const still = await fetch(`${withToken.url}/loans`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(((await still.json()) as { loans: { id: string }[] }).loans.map((l) => l.id)).toContain(id);
  });
});

describe("a service without converter tools (knock serve)", () => {
  it("knock health says how to give knock serve its tools, once, without pointing back at knock health", async () => {
    const run = await knock(["health", "--url", noTools.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("ConverterMissing: The converter tool acsmdownloader is missing or does not run. Start knock serve with --tools DIR or LIBGOUROU_BIN_DIR");
    expect(run.stderr).not.toContain("see its health answer");
    expect(run.stderr).not.toContain("knock serve:");
  });

  it("a conversion names the missing tool and --tools, not a deployment image", async () => {
    const run = await knock(["convert", "--url", noTools.url, "--out", scratchDir("knock-msg-out-", scratch), inputFile("book.acsm", makeAcsm())]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("ConverterMissing: The converter tool adept_activate is missing or does not run. Start knock serve with --tools DIR or LIBGOUROU_BIN_DIR");
    expect(run.stderr).not.toMatch(/missing from the (deployment|function's) image/);
  });

  it("knock serve's start-up line says \"knock serve:\" once and what to do", async () => {
    const { child, done } = startKnock(["serve", "--port", "0", "--data", scratchDir("knock-msg-data-", scratch), "--tools", scratchDir("knock-msg-notools-", scratch)]);
    let stderr = "";
    await new Promise<void>((up, fail) => {
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes("listening on")) up();
      });
      child.on("exit", () => fail(new Error(`serve exited: ${stderr}`)));
    });
    child.kill("SIGINT");
    await done;
    const line = stderr.split("\n").find((l) => l.includes("no converter tools"))!;
    expect(line.match(/knock serve:/g)).toHaveLength(1);
    expect(line).toContain("so health and conversions answer 500 ConverterMissing. Start knock serve with --tools DIR or LIBGOUROU_BIN_DIR");
  });
});

describe("no internet under knock serve", () => {
  it("names the host that did not resolve and says this machine has no route to it", async () => {
    const stateDir = scratchDir("knock-msg-state-", scratch);
    const offline = await startStandinService({
      seams: {
        // This machine's DNS answers nothing: Adobe's activation host does not resolve.
        egress: { ...testEgress({ port: 9 }), resolver: async (host) => Promise.reject(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: "EAI_AGAIN" })) },
        toolEnv: () => ({ FAKE_ADEPT_STATE_DIR: stateDir, FAKE_ADEPT_NO_RETRY_PAUSE: "1" }),
      },
    });
    try {
      const run = await knock(["convert", "--url", offline.url, "--out", scratchDir("knock-msg-out-", scratch), inputFile("book.acsm", makeAcsm())]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(
        "✗ book.acsm: UpstreamError: This machine has no route to adeactivate.adobe.com (Adobe's activation server): the name does not resolve. " +
          "Check this machine's internet connection and DNS, then try again.",
      );
      expect(run.stderr).not.toMatch(/Could not talk|HTTP Error code|try again later/);
    } finally {
      await offline.stop();
    }
  });
});

describe("a file that is not an ACSM", () => {
  it.each([
    ["book.pdf", Buffer.from("%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"), "this is a PDF, not an ACSM file."],
    ["book.epub", Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(26), Buffer.from("mimetypeapplication/epub+zip")]), "this is an EPUB, not an ACSM file."],
    ["URLLink.acsm", Buffer.from("<!DOCTYPE html>\n<html><body>Sign in to download</body></html>\n"), "this is a web page (HTML), not an ACSM file"],
  ])("%s is refused as what it is, before anything is sent", async (name, content, said) => {
    const before = posts(withToken).length;
    const run = await knock(["convert", "--url", withToken.url, "--token", TOKEN, "--out", scratchDir("knock-msg-out-", scratch), inputFile(name, content)]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`✗ ${name}: ${said}`);
    expect(run.stderr).toContain("Pass the .acsm file the shop or library gave you");
    expect(run.stderr).not.toMatch(/neither JSON|well-formed|BadRequest/);
    expect(posts(withToken).length).toBe(before);
  });

  it("an http:// input keeps its URL in the error line", async () => {
    const run = await knock(["convert", "--url", withToken.url, "--token", TOKEN, "http://shop.example.test/URLLink.acsm"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("✗ http://shop.example.test/URLLink.acsm: only https:// URLs are accepted");
  });
});

describe("an address that does not resolve or answer", () => {
  it("is reported first, naming the host, whatever else is missing (region, credentials)", async () => {
    const noRegion = await knock(["health", "--url", "http://nonexistent.invalid"]);
    expect(noRegion.code).toBe(1);
    expect(noRegion.stderr).toContain("knock: Cannot resolve nonexistent.invalid (ENOTFOUND): check the URL and your network or DNS.");
    expect(noRegion.stderr).not.toContain("Cannot tell the AWS region");

    const noCredentials = await knock(["loans", "--url", "http://nonexistent.invalid", "--region", "us-east-1"]);
    expect(noCredentials.code).toBe(1);
    expect(noCredentials.stderr).toContain("knock: Cannot resolve nonexistent.invalid (ENOTFOUND)");
    expect(noCredentials.stderr).not.toContain("No AWS credentials");

    // A Function URL whose connection is refused (KNOCK_CONNECT_TO: port 9 on loopback, where nothing listens).
    const refused = await knock(["convert", "--url", "https://abcdefghijklmnop.lambda-url.eu-west-3.on.aws/", inputFile("x.acsm", makeAcsm())], {
      env: cliEnv({ KNOCK_CONNECT_TO: "127.0.0.1:9" }),
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("Nothing answers at abcdefghijklmnop.lambda-url.eu-west-3.on.aws (connection refused)");
    expect(refused.stderr).not.toContain("No AWS credentials");
  });

  it("a region that cannot be told is still a usage error once the host answers (exit 2)", async () => {
    const run = await knock(["health", "--url", "http://example.test/"], { env: cliEnv({ KNOCK_CONNECT_TO: `127.0.0.1:${new URL(notKnockUrl).port}` }) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("knock: Cannot tell the AWS region of example.test: pass --region");
  });
});

describe("the service's address", () => {
  it("a URL with a path gets a warning on stderr and the service's origin is used", async () => {
    const run = await knock(["health", "--url", `${withToken.url}/loans`, "--token", TOKEN]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`knock: warning: --url has /loans after the service's address, which the service does not use; using ${withToken.url}`);
    expect(run.stdout).toContain("status: ok");
    expect(run.stdout).not.toContain("undefined");

    const open = await knock(["open", "--url", `${withToken.url}/some/page?x=1`, "--token", TOKEN, "--no-qr"]);
    expect(open.code).toBe(0);
    expect(open.stdout).toBe(`${withToken.url}/#token=${TOKEN}\n`);
    expect(open.stderr).toContain("knock: warning: --url has /some/page?x=1 after the service's address");
  });

  it("an answer that is not a health answer is reported as such", async () => {
    const run = await knock(["health", "--url", notKnockUrl]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`knock: ${notKnockUrl} answered, but not with a knock-lambda health answer (it has no "status"): check that the address is the service's.`);
    expect(run.stdout).not.toContain("status: undefined");
  });

  it("health prints the body limit in the units the docs use (256 KiB)", async () => {
    const run = await knock(["health", "--url", withToken.url, "--token", TOKEN]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("max request body: 256 KiB (262144 bytes)");
    expect(run.stdout).not.toContain("262 KB");
  });
});

describe("without the Pulumi CLI", () => {
  // cliEnv's PATH (/usr/bin:/bin) has no pulumi.
  it("knock open says pulumi is not installed, how to install it, and how to do without", async () => {
    const run = await knock(["open"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("knock: pulumi is not installed (not found on PATH), and the access link is the stack's access_url output: install the Pulumi CLI (https://www.pulumi.com/docs/install/),");
    expect(run.stderr).toContain("or make the link yourself: knock open --url URL --token TOKEN (or set KNOCK_TOKEN).");
    expect(run.stderr).not.toContain("has no access_url output");
  });

  it("a command with no address says so too", async () => {
    const run = await knock(["loans"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("No service address: pass --url URL or set KNOCK_URL (reading the stack's function_url needs the Pulumi CLI, which is not installed: https://www.pulumi.com/docs/install/).");
  });
});
