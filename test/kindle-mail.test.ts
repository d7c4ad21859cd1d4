// Send to Kindle's mail (lambda/src/kindle/mail.ts) against a real SMTP server on 127.0.0.1
// (test/support/smtp.ts: smtp-server with TLS on a self-signed certificate), each message parsed
// with mailparser: what Amazon is sent, and each failure's own answer, with nothing retried but
// 4yz replies and nothing of the password in any answer or anything printed. The SES path runs the
// real SDK client against a local HTTP endpoint, so its errors are the SDK's own.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  AccountSuspendedException,
  BadRequestException,
  MessageRejected,
  NotFoundException,
  SESv2Client,
  SESv2ServiceException,
  TooManyRequestsException,
} from "../lambda/node_modules/@aws-sdk/client-sesv2";
import { ServiceError } from "../lambda/src/errors";
import {
  BODY_TEXT,
  MAX_ATTEMPTS,
  classifySesFailure,
  classifySmtpFailure,
  composeMessage,
  maxBookBytes,
  sendToKindle,
  type KindleAttachment,
  type KindleDelivery,
  type KindleTransport,
  type SendOptions,
  type Verdict,
} from "../lambda/src/kindle/mail";
import { start, type SmtpServerOptions, type TestSmtpServer } from "./support/smtp";

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function smtp(options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const server = await start(options);
  servers.push(server);
  return server;
}

const EPUB: KindleAttachment = { filename: "Les Misérables - Victor Hugo.epub", contentType: "application/epub+zip", bytes: Buffer.from("PK\u0003\u0004 an EPUB's bytes ".repeat(500)) };
const TO = "reader_42@kindle.com";
const FROM = "reader@gmail.test";
const DOWNLOAD = "https://knock.example/books/abc.epub";

function delivery(transport: KindleTransport): KindleDelivery {
  return { to: TO, from: FROM, transport };
}

/**
 * Sends with the backoff recorded instead of waited; `Date.now` moves on by each backoff, as if it
 * had been waited, so the deadline rules run as they would.
 */
async function send(transport: KindleTransport, attachment: KindleAttachment, options: Partial<SendOptions> & { deadlineIn?: number } = {}) {
  const sleeps: number[] = [];
  let skipped = 0;
  const realNow = Date.now.bind(Date);
  const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() + skipped);
  try {
    const { deadlineIn = 120_000, ...rest } = options;
    const result = await sendToKindle(delivery(transport), attachment, {
      deadline: realNow() + deadlineIn,
      sleep: async (ms) => {
        sleeps.push(ms);
        skipped += ms;
      },
      downloadUrl: DOWNLOAD,
      ...rest,
    }).then(
      (sent) => ({ sent, error: undefined }),
      (error: unknown) => ({ sent: undefined, error }),
    );
    return { ...result, sleeps };
  } finally {
    clock.mockRestore();
  }
}

/** Sends to a test SMTP server, trusting its certificate unless told not to. */
function sendTo(server: { url: string; ca?: string }, attachment = EPUB, options: Partial<SendOptions> & { deadlineIn?: number; trust?: boolean } = {}) {
  const { trust = true, ...rest } = options;
  return send({ kind: "smtp", url: server.url }, attachment, { ...(trust && server.ca ? { tls: { ca: server.ca } } : {}), ...rest });
}

/** The ServiceError a send ended with (it must have ended with one). */
function failure(result: { error: unknown }): ServiceError {
  expect(result.error).toBeInstanceOf(ServiceError);
  return result.error as ServiceError;
}

/** Everything printed to stdout, stderr or the console while the tests of a block run. */
const printed: string[] = [];
function capturePrinting(): void {
  const restore: (() => void)[] = [];
  beforeEach(() => {
    printed.length = 0;
    for (const stream of [process.stdout, process.stderr]) {
      const original = stream.write;
      stream.write = function write(this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
        printed.push(String(chunk));
        return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof stream.write;
      restore.push(() => (stream.write = original));
    }
    for (const level of ["log", "info", "warn", "error", "debug"] as const) {
      const spy = vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(" ")));
      restore.push(() => spy.mockRestore());
    }
  });
  afterEach(() => {
    for (const undo of restore.splice(0)) undo();
  });
}

/** Nothing of the password, plain or percent-encoded, in an answer's message or fields, nor in anything printed. */
function expectNoPassword(err: ServiceError, password: string): void {
  const said = `${err.message} ${err.stack ?? ""} ${JSON.stringify(err.details)} ${printed.join("\n")}`;
  for (const form of [password, encodeURIComponent(password), Buffer.from(password).toString("base64")]) expect(said).not.toContain(form);
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe("the message Amazon gets", () => {
  it.each(["implicit", "starttls"] as const)("over %s TLS: to the Kindle, from the approved sender, empty subject, one attachment with the book's bytes", async (tls) => {
    const server = await smtp({ tls });
    const { sent, error, sleeps } = await sendTo(server);
    expect(error).toBeUndefined();
    expect(sent).toMatchObject({ attempts: 1, transport: "smtp" });
    expect(sleeps).toEqual([]);
    // Signed in once, encrypted.
    expect(server.signIns).toEqual([{ secure: true, accepted: true }]);
    expect(server.messages).toHaveLength(1);
    const [{ parsed, raw, envelope }] = server.messages;
    expect(envelope).toEqual({ from: FROM, to: [TO] });
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((a) => a.address) : []).toEqual([TO]);
    expect(parsed.from?.value.map((a) => a.address)).toEqual([FROM]);
    // One Subject header, present and empty (RFC 5322 §3.6.5 allows it): Amazon then titles the
    // document by the attachment's file name.
    const headers = raw.toString("latin1").split("\r\n\r\n")[0];
    expect(headers.match(/^Subject:.*$/gim)).toEqual(["Subject: "]);
    expect(parsed.subject ?? "").toBe("");
    expect(parsed.text?.trim()).toBe(BODY_TEXT);
    expect(BODY_TEXT).not.toContain("\n");
    expect(parsed.attachments).toHaveLength(1);
    const [attachment] = parsed.attachments;
    expect(attachment.contentType).toBe("application/epub+zip");
    expect(attachment.filename).toBe("Les Misérables - Victor Hugo.epub");
    expect(attachment.contentDisposition).toBe("attachment");
    expect(attachment.content.equals(EPUB.bytes)).toBe(true);
    expect(sent?.messageId).toBe(parsed.messageId);
  });

  it("sends a PDF as application/pdf, its bytes unchanged", async () => {
    const server = await smtp({ tls: "starttls" });
    const pdf: KindleAttachment = { filename: "Manual - Someone.pdf", contentType: "application/pdf", bytes: Buffer.from([0x25, 0x50, 0x44, 0x46, 0x2d, 0x31, 0x2e, 0x37, 0x0a, 0xff, 0x00, 0xe2, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]) };
    const { error } = await sendTo(server, pdf);
    expect(error).toBeUndefined();
    const [attachment] = server.messages[0].parsed.attachments;
    expect([attachment.contentType, attachment.filename]).toEqual(["application/pdf", "Manual - Someone.pdf"]);
    // A CRLF "." CRLF inside the bytes must survive the SMTP dot-stuffing (RFC 5321 §4.5.2).
    expect(attachment.content.equals(pdf.bytes)).toBe(true);
  });

  it("composes the message with the subject header written by hand (mail-composer alone leaves it out)", async () => {
    const { raw } = await composeMessage(delivery({ kind: "smtp", url: "smtps://u:p@h:465" }), EPUB);
    const headers = raw.toString("latin1").split("\r\n\r\n")[0];
    expect(headers.startsWith("Subject: \r\n")).toBe(true);
    expect(headers.match(/^Subject:/gim)).toHaveLength(1);
  });
});

describe("when the mail does not go", () => {
  capturePrinting();

  it("answers a refused sign-in with KindleMailSignInRefused, says how to make a Gmail app password, never shows the password, and does not retry", async () => {
    const server = await smtp({ tls: "implicit", auth: "refuse" });
    const result = await sendTo(server);
    const err = failure(result);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailSignInRefused" });
    expect(err.message).toMatch(/app password.*2-Step Verification/);
    expect(err.details).toMatchObject({ smtp_reply: "535 5.7.8", mail_server: `127.0.0.1:${server.port}` });
    expectNoPassword(err, server.password);
    expect(result.sleeps).toEqual([]);
    expect(server.signIns).toEqual([{ secure: true, accepted: false }]);
    expect(server.messages).toEqual([]);
  });

  it("answers a wrong password the same way, without naming it", async () => {
    const server = await smtp({ tls: "starttls" });
    const wrong = "wrong pass/word-42";
    const err = failure(await sendTo({ ...server, url: server.url.replace(encodeURIComponent(server.password), encodeURIComponent(wrong)) }));
    expect(err.errorType).toBe("KindleMailSignInRefused");
    expectNoPassword(err, wrong);
  });

  it("refuses an smtp:// server that offers no STARTTLS with KindleMailTlsFailed, without sending the password in the clear", async () => {
    const server = await smtp({ tls: "none" });
    const err = failure(await sendTo(server));
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailTlsFailed" });
    expect(err.message).toMatch(/does not offer STARTTLS/);
    expectNoPassword(err, server.password);
    // The server would have taken AUTH unencrypted: none came.
    expect(server.signIns).toEqual([]);
    expect(server.messages).toEqual([]);
  });

  it("answers smtps:// against a server that speaks plain SMTP with KindleMailTlsFailed", async () => {
    const server = await smtp({ tls: "starttls" });
    const err = failure(await sendTo({ ...server, url: server.url.replace(/^smtp:/, "smtps:") }));
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailTlsFailed" });
    expect(err.message).toMatch(/TLS handshake failed/);
    expectNoPassword(err, server.password);
    expect(server.signIns).toEqual([]);
  });

  it.each(["implicit", "starttls"] as const)("answers a certificate the service does not trust (%s) with KindleMailTlsFailed", async (tls) => {
    const server = await smtp({ tls });
    const err = failure(await sendTo(server, EPUB, { trust: false }));
    expect(err).toMatchObject({ errorType: "KindleMailTlsFailed" });
    expect(err.message).toMatch(/certificate is not trusted/);
    expect(err.details).toMatchObject({ tls_error: expect.stringMatching(/SELF_SIGNED/) });
    expectNoPassword(err, server.password);
    expect(server.signIns).toEqual([]);
    expect(server.messages).toEqual([]);
  });

  it("answers a refused connection with KindleMailUnreachable, naming the server and the Lambda port rule", async () => {
    const port = await closedPort();
    const password = "closed-port secret";
    const err = failure(await sendTo({ url: `smtps://reader%40gmail.test:${encodeURIComponent(password)}@127.0.0.1:${port}` }));
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailUnreachable", details: { socket_error: "ECONNREFUSED" } });
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toMatch(/refused the connection.*Port 25 is blocked on AWS Lambda: use port 465 \(smtps:\/\/\) or 587/);
    expectNoPassword(err, password);
  });

  it("answers an smtp:// URL on a server that waits for TLS first with KindleMailUnreachable, pointing at smtps://", async () => {
    // The client waits for a greeting the server sends only after a TLS handshake; nodemailer's
    // greeting timer (half the 6 s left here) ends it, before the inactivity timer (all of it) could.
    const server = await smtp({ tls: "implicit" });
    const err = failure(await sendTo({ ...server, url: server.url.replace(/^smtps:/, "smtp:") }, EPUB, { deadlineIn: 6000 }));
    expect(err).toMatchObject({ errorType: "KindleMailUnreachable" });
    expect(err.message).toMatch(/never greeted.*needs smtps:\/\//);
    expectNoPassword(err, server.password);
  }, 60_000);

  it("answers a server that stops answering after the message with KindleMailTimeout at the deadline (it may have it), not retried", async () => {
    const server = await smtp({ tls: "implicit", stallAfterData: true });
    const result = await sendTo(server, EPUB, { deadlineIn: 6000 });
    const err = failure(result);
    // Aborted at the deadline (EABORT), not left to the inactivity timer, which would fire a second later.
    expect(err).toMatchObject({ statusCode: 504, errorType: "KindleMailTimeout", details: { mailer_error: "EABORT" } });
    expect(err.message).toMatch(/may or may not have taken it/);
    expectNoPassword(err, server.password);
    expect(result.sleeps).toEqual([]);
    expect(server.stalled()).toBe(1);
  }, 60_000);

  it("retries a 4yz reply after 1 s and sends the book", async () => {
    const server = await smtp({ tls: "starttls", tempFailures: 1 });
    const { sent, error, sleeps } = await sendTo(server);
    expect(error).toBeUndefined();
    expect(sent).toMatchObject({ attempts: 2 });
    expect(sleeps).toEqual([1000]);
    expect(server.tempFailed()).toBe(1);
    expect(server.messages).toHaveLength(1);
    expect(server.messages[0].parsed.attachments[0].content.equals(EPUB.bytes)).toBe(true);
  });

  it(`gives up after ${MAX_ATTEMPTS} 4yz replies (1, 2, 4 s apart) with KindleMailBusy`, async () => {
    const server = await smtp({ tls: "starttls", tempFailures: 100 });
    const result = await sendTo(server);
    const err = failure(result);
    expect(err).toMatchObject({ statusCode: 503, errorType: "KindleMailBusy", details: { attempts: 4, smtp_reply: "451 4.3.0" } });
    expectNoPassword(err, server.password);
    expect(result.sleeps).toEqual([1000, 2000, 4000]);
    expect(server.tempFailed()).toBe(4);
    expect(server.messages).toEqual([]);
  });

  it("stops retrying when the deadline leaves no room for another attempt after the backoff", async () => {
    // 10 s: attempt 1, 1 s, attempt 2, 2 s, attempt 3; a 4 s backoff would leave under 5 s.
    const server = await smtp({ tls: "implicit", tempFailures: 100 });
    const result = await sendTo(server, EPUB, { deadlineIn: 10_000 });
    expect(failure(result)).toMatchObject({ errorType: "KindleMailBusy", details: { attempts: 3 } });
    expect(result.sleeps).toEqual([1000, 2000]);
    expect(server.tempFailed()).toBe(3);
  });

  it("answers with KindleMailTimeout, without connecting, when too little time is left for one attempt", async () => {
    const err = failure(await sendTo({ url: `smtps://u%40x.test:p@127.0.0.1:${await closedPort()}` }, EPUB, { deadlineIn: 1000 }));
    expect(err).toMatchObject({ statusCode: 504, errorType: "KindleMailTimeout" });
  });

  it("answers a refused Kindle address with KindleRecipientRefused, not retried", async () => {
    const server = await smtp({ tls: "implicit", refuseRecipient: true });
    const result = await sendTo(server);
    const err = failure(result);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleRecipientRefused", details: { smtp_reply: "550 5.1.1" } });
    expect(err.message).toContain(TO);
    expect(err.message).toContain("Approved Personal Document E-mail List");
    expectNoPassword(err, server.password);
    expect(result.sleeps).toEqual([]);
    expect(server.messages).toEqual([]);
  });

  it("refuses a book too big for the transport before connecting at all, with KindleBookTooBig (413) and the download link", async () => {
    const limit = maxBookBytes({ kind: "smtp", url: "smtps://u:p@h:465" });
    const port = await closedPort();
    const err = failure(await sendTo({ url: `smtps://u%40x.test:p@127.0.0.1:${port}` }, { ...EPUB, bytes: Buffer.alloc(limit + 1) }));
    // A closed port would have answered KindleMailUnreachable: nothing connected.
    expect(err).toMatchObject({ statusCode: 413, errorType: "KindleBookTooBig", details: { size_bytes: limit + 1, limit_bytes: limit, download_url: DOWNLOAD } });
    expect(err.message).toMatch(/25 MB.*50 MB/);
  });

  it("sends the largest book that fits whole", async () => {
    const limit = maxBookBytes({ kind: "smtp", url: "smtps://u:p@h:465" });
    const server = await smtp({ tls: "implicit" });
    const book = Buffer.alloc(limit, 7);
    const { error } = await sendTo(server, { ...EPUB, bytes: book });
    expect(error).toBeUndefined();
    // Under Gmail's 25 MB once encoded.
    expect(server.messages[0].raw.length).toBeLessThanOrEqual(25_000_000);
    expect(server.messages[0].parsed.attachments[0].content.equals(book)).toBe(true);
  }, 120_000);

  it("answers a server whose advertised SIZE is smaller with KindleBookTooBig before uploading (RFC 1870)", async () => {
    const server = await smtp({ tls: "implicit", maxMessageBytes: 5_000 });
    const result = await sendTo(server);
    expect(failure(result)).toMatchObject({ statusCode: 413, errorType: "KindleBookTooBig", details: { download_url: DOWNLOAD } });
    expect(result.sleeps).toEqual([]);
    expect(server.messages).toEqual([]);
  });

  it("answers a 552 after DATA (SIZE advertised without a number) with KindleBookTooBig, not retried", async () => {
    const server = await smtp({ tls: "starttls", maxMessageBytes: 5_000, advertiseSize: false });
    const result = await sendTo(server);
    expect(failure(result)).toMatchObject({ statusCode: 413, errorType: "KindleBookTooBig", details: { size_bytes: EPUB.bytes.length } });
    expect(result.sleeps).toEqual([]);
    expect(server.messages).toEqual([]);
  });
});

/**
 * A stand-in for SES v2's SendEmail on 127.0.0.1, answering as the service does under its REST-JSON
 * protocol: `POST /v2/email/outbound-emails`, `{"MessageId": …}` on success, and errors named by the
 * `x-amzn-ErrorType` header with a JSON `message`, which is what the SDK's deserializer reads
 * (lambda/node_modules/@aws-sdk/client-sesv2 3.1178, dist-cjs/index.js, SendEmail and its errors).
 */
async function fakeSes(answers: readonly { status: number; error?: string }[]): Promise<{ client: SESv2Client; bodies: Record<string, unknown>[] }> {
  const bodies: Record<string, unknown>[] = [];
  const server: HttpServer = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v2/email/outbound-emails") {
        res.writeHead(404, { "content-type": "application/json", "x-amzn-errortype": "NotFoundException" }).end(JSON.stringify({ message: `no ${req.method} ${req.url}` }));
        return;
      }
      bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>);
      const answer = answers[Math.min(bodies.length, answers.length) - 1];
      if (answer.error === undefined) {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ MessageId: `0100-test-${bodies.length}` }));
      } else {
        res.writeHead(answer.status, { "content-type": "application/json", "x-amzn-errortype": `${answer.error}:http://internal.amazon.com/coral/com.amazonaws.sesv2/` }).end(JSON.stringify({ message: `${answer.error} from the fake` }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  const client = new SESv2Client({
    region: "eu-west-1",
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "test-secret" },
    // The SDK's own retries would hide the attempts sendToKindle makes.
    maxAttempts: 1,
  });
  servers.push({ close: async () => client.destroy() });
  return { client, bodies };
}

describe("through Amazon SES v2", () => {
  const ses: KindleTransport = { kind: "ses", region: "eu-west-1" };

  it("sends the raw message to the Kindle and answers SES's message id", async () => {
    const { client, bodies } = await fakeSes([{ status: 200 }]);
    const { sent, error } = await send(ses, EPUB, { sesClient: client });
    expect(error).toBeUndefined();
    expect(sent).toMatchObject({ transport: "ses", attempts: 1, messageId: "<0100-test-1@eu-west-1.amazonses.com>" });
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ FromEmailAddress: FROM, Destination: { ToAddresses: [TO] } });
    const raw = Buffer.from(((bodies[0].Content as { Raw: { Data: string } }).Raw.Data), "base64").toString("latin1");
    expect(raw.split("\r\n\r\n")[0].match(/^Subject:.*$/gim)).toEqual(["Subject: "]);
  });

  it("retries TooManyRequestsException and then sends", async () => {
    const { client, bodies } = await fakeSes([{ status: 429, error: "TooManyRequestsException" }, { status: 200 }]);
    const { sent, sleeps } = await send(ses, EPUB, { sesClient: client });
    expect(sent).toMatchObject({ attempts: 2 });
    expect(sleeps).toEqual([1000]);
    expect(bodies).toHaveLength(2);
  });

  it("answers throttling on every attempt with KindleMailBusy naming the SES error", async () => {
    const { client, bodies } = await fakeSes([{ status: 429, error: "TooManyRequestsException" }]);
    const result = await send(ses, EPUB, { sesClient: client });
    expect(failure(result)).toMatchObject({ statusCode: 503, errorType: "KindleMailBusy", details: { attempts: 4, ses_error: "TooManyRequestsException" } });
    expect(bodies).toHaveLength(4);
  });

  it.each([
    ["MessageRejected", 400, "KindleMailRefused", /sandbox.*production access/],
    ["MailFromDomainNotVerifiedException", 400, "KindleMailRefused", /not verified/],
    ["SendingPausedException", 400, "KindleMailRefused", /paused/],
    ["AccountSuspendedException", 400, "KindleMailRefused", /suspended/],
    ["LimitExceededException", 400, "KindleMailBusy", /quota/],
    ["AccessDeniedException", 403, "KindleMailSignInRefused", /ses:SendRawEmail/],
  ] as const)("answers %s (HTTP %i) at once with %s", async (name, status, errorType, text) => {
    const { client, bodies } = await fakeSes([{ status, error: name }]);
    const result = await send(ses, EPUB, { sesClient: client });
    const err = failure(result);
    expect(err).toMatchObject({ errorType, details: { ses_region: "eu-west-1", ses_error: name } });
    expect(err.message).toMatch(text);
    expect(result.sleeps).toEqual([]);
    expect(bodies).toHaveLength(1);
  });

  it("refuses a book over SES's 40 MB before calling it", async () => {
    const limit = maxBookBytes(ses);
    const { client, bodies } = await fakeSes([{ status: 200 }]);
    const err = failure(await send(ses, { ...EPUB, bytes: Buffer.alloc(limit + 1) }, { sesClient: client }));
    expect(err).toMatchObject({ statusCode: 413, errorType: "KindleBookTooBig", details: { limit_bytes: limit, download_url: DOWNLOAD } });
    expect(err.message).toMatch(/40 MB/);
    expect(bodies).toEqual([]);
  });
});

describe("how a failure is filed", () => {
  const ctx = { host: "smtp.gmail.com", port: 465, to: TO, from: FROM };
  const book = { sizeBytes: 1, limitBytes: 2, why: "test" };
  /** The answer a permanent verdict carries (it must be permanent). */
  const filedAs = (verdict: Verdict): Error => {
    if (verdict.transient) throw new Error(`expected a permanent verdict, got a transient one (${verdict.reply})`);
    return verdict.error;
  };

  it("keeps the server's words (which may echo the sign-in) out of a failure it has no answer for", () => {
    // Shaped as nodemailer's smtp-connection _formatError makes it: the reply appended to the message.
    const secret = Buffer.from("\u0000reader@gmail.test\u0000hunter2").toString("base64");
    const err = Object.assign(new Error(`Invalid response: 299 what was sent: ${secret}`), { code: "EPROTOCOL", response: `299 what was sent: ${secret}`, command: "AUTH PLAIN" });
    const filed = filedAs(classifySmtpFailure(err, ctx, book));
    expect(filed.message).toMatch(/smtp\.gmail\.com:465 failed \(nodemailer EPROTOCOL\)/);
    expect(`${filed.message} ${filed.stack ?? ""}`).not.toContain(secret);
  });

  it("files any 4yz as transient, whatever the command, with its code and enhanced code only", () => {
    for (const [command, response] of [["AUTH PLAIN", "454 4.7.0 Temporary authentication failure"], ["RCPT TO", "450 4.2.1 Mailbox busy hunter2"], ["CONN", "421 4.7.0 Try again later"]]) {
      expect(classifySmtpFailure({ code: "EENVELOPE", responseCode: Number(response.slice(0, 3)), response, command }, ctx, book)).toEqual({ transient: true, reply: response.slice(0, 9) });
    }
  });

  /** An SES v2 error as the SDK throws it: its own exception class, name, $fault and $metadata. */
  const sdk = <T>(Exception: new (opts: { message: string; $metadata: { httpStatusCode: number } }) => T, status: number): T =>
    new Exception({ message: "from the test", $metadata: { httpStatusCode: status } });
  const sesCtx = { region: "us-east-1", to: TO, from: FROM };

  it.each([
    ["TooManyRequestsException", sdk(TooManyRequestsException, 429), { transient: true, reply: "TooManyRequestsException" }],
    ["a server fault (HTTP 500)", new SESv2ServiceException({ name: "InternalFailure", $fault: "server", message: "x", $metadata: { httpStatusCode: 500 } }), { transient: true, reply: "InternalFailure" }],
  ] as const)("files %s as transient", (_what, err, verdict) => {
    expect(classifySesFailure(err, sesCtx)).toEqual(verdict);
  });

  it.each([
    ["MessageRejected", sdk(MessageRejected, 400), "KindleMailRefused"],
    ["AccountSuspendedException", sdk(AccountSuspendedException, 400), "KindleMailRefused"],
    ["NotFoundException", sdk(NotFoundException, 404), "KindleMailRefused"],
    ["BadRequestException", sdk(BadRequestException, 400), "KindleMailRefused"],
  ] as const)("files %s as permanent: %s", (name, err, errorType) => {
    expect(filedAs(classifySesFailure(err, sesCtx))).toMatchObject({ errorType, details: { ses_error: name, ses_region: "us-east-1" } });
  });

  it("files an SDK that cannot reach SES as KindleMailUnreachable", () => {
    expect(filedAs(classifySesFailure(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), sesCtx))).toMatchObject({ errorType: "KindleMailUnreachable" });
  });
});
