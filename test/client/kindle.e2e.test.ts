// `knock convert --kindle` and `knock kindle-test` (the real CLI processes) against `knock serve` set
// up for Send to Kindle with a real SMTP server on 127.0.0.1 (test/support/smtp.ts): the book is
// saved and mailed, a failed mail still saves the book, and the test document goes the same way.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { startSmtpServer, type TestSmtp } from "../support/smtp";
import { cleanup, knock, scratchDir, startStandinService, type StandinService } from "./helpers";

const scratch: string[] = [];
let smtp: TestSmtp;
let refusing: TestSmtp;
let service: StandinService;
let refused: StandinService;

beforeAll(async () => {
  [smtp, refusing] = await Promise.all([startSmtpServer({ tls: "starttls" }), startSmtpServer({ tls: "starttls", refuseRecipient: true })]);
  const kindle = (server: TestSmtp) => ({ kindle: { to: "reader_42@kindle.com", from: "reader@gmail.test", smtpUrl: server.url }, seams: { kindle: { tls: { ca: server.ca } } } });
  [service, refused] = await Promise.all([startStandinService(kindle(smtp)), startStandinService(kindle(refusing))]);
});

afterAll(async () => {
  await Promise.all([service?.stop(), refused?.stop()]);
  await Promise.all([smtp?.close(), refusing?.close()]);
  cleanup(scratch);
});

function acsmFile(title: string): string {
  const file = join(scratchDir("knock-kindle-in-", scratch), `${title}.acsm`);
  writeFileSync(file, makeAcsm({ title, format: "application/pdf" }));
  return file;
}

describe("knock convert --kindle", () => {
  it("saves the book and mails it, and says it was sent (--json has the message id)", async () => {
    const out = scratchDir("knock-kindle-out-", scratch);
    const before = smtp.received.length;
    const run = await knock(["convert", "--kindle", "--url", service.url, "--out", out, acsmFile("CLI Kindle")]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/knock: sent to reader_42@kindle\.com as "CLI Kindle - Test Author\.pdf" \(message <[^>]+>\)\. Amazon sends no receipt/);
    const saved = readFileSync(join(out, "CLI Kindle.pdf"));
    expect(smtp.received[before].parsed.attachments[0].content.equals(saved)).toBe(true);

    const json = await knock(["convert", "--kindle", "--json", "--url", service.url, "--out", out, acsmFile("CLI Json")]);
    const result = JSON.parse(json.stdout.trim()) as { ok: boolean; kindle: { to: string; message_id: string } };
    expect(result.ok).toBe(true);
    expect(result.kindle.to).toBe("reader_42@kindle.com");
    expect(result.kindle.message_id).toBe(smtp.received[before + 1].parsed.messageId);
  });

  it("saves the book when the mail is refused, and fails that input with the mail's error (exit 1)", async () => {
    const out = scratchDir("knock-kindle-out-", scratch);
    const run = await knock(["convert", "--kindle", "--url", refused.url, "--out", out, acsmFile("Refused Mail")]);
    expect(run.code).toBe(1);
    expect(readdirSync(out)).toEqual(["Refused Mail.pdf"]);
    expect(run.stderr).toMatch(/Refused Mail\.acsm → .*Refused Mail\.pdf \(\d+ (bytes|KB)\), but not sent to the Kindle: KindleRecipientRefused: The mail server 127\.0\.0\.1:\d+ refused the Kindle address reader_42@kindle\.com/);
  });

  it("is refused by a service without Send to Kindle before anything is converted", async () => {
    const plain = await startStandinService();
    try {
      const out = scratchDir("knock-kindle-out-", scratch);
      const run = await knock(["convert", "--kindle", "--url", plain.url, "--out", out, acsmFile("No Kindle")]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("KindleNotConfigured");
      expect(readdirSync(out)).toEqual([]);
    } finally {
      await plain.stop();
    }
  });
});

describe("knock kindle-test", () => {
  it("has the service mail the test document and prints what was sent", async () => {
    const before = smtp.received.length;
    const run = await knock(["kindle-test", "--url", service.url]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^sent "knock-lambda test document - knock-lambda\.epub" to reader_42@kindle\.com via smtp \(message <[^>]+>\)\n/);
    expect(smtp.received[before].parsed.attachments[0].contentType).toBe("application/epub+zip");
  });
});

describe("knock serve's Send to Kindle flags", () => {
  it("needs the SMTP URL from KNOCK_KINDLE_SMTP_URL, and checks the address and the URL before starting (exit 2)", async () => {
    const data = scratchDir("knock-kindle-serve-", scratch);
    const noUrl = await knock(["serve", "--port", "0", "--data", data, "--kindle-address", "reader_42@kindle.com"], { env: { ...process.env, KNOCK_KINDLE_SMTP_URL: "" } });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("--kindle-address needs the SMTP server in KNOCK_KINDLE_SMTP_URL");
    const badAddress = await knock(["serve", "--port", "0", "--data", data, "--kindle-address", "reader@gmail.com"], { env: { ...process.env, KNOCK_KINDLE_SMTP_URL: "smtps://a%40b.test:pw@smtp.b.test:465" } });
    expect(badAddress.code).toBe(2);
    expect(badAddress.stderr).toMatch(/Send to Kindle: The Kindle address "reader@gmail\.com" is not at Amazon's Kindle domain/);
    const port25 = await knock(["serve", "--port", "0", "--data", data, "--kindle-address", "reader_42@kindle.com"], { env: { ...process.env, KNOCK_KINDLE_SMTP_URL: "smtp://a%40b.test:pw@smtp.b.test:25" } });
    expect(port25.code).toBe(2);
    expect(port25.stderr).toMatch(/port 25, which AWS blocks/);
    expect(port25.stderr).not.toContain(":pw@");
  });
});
