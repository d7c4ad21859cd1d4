// Send to Kindle's mail (lambda/src/kindle/mail.ts) against a real SMTP server on 127.0.0.1
// (test/support/smtp.ts: smtp-server with TLS on a self-signed certificate), each message parsed
// with mailparser: what Amazon is sent, and each failure's own answer, with nothing retried but
// 4yz replies and nothing of the password in any answer.
import { createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ServiceError } from "../lambda/src/errors";
import { BODY_TEXT, kindleFileName, maxBookBytes, sendToKindle, type KindleAttachment, type KindleDelivery } from "../lambda/src/kindle/mail";
import { startSmtpServer, type TestSmtp, type TestSmtpOptions } from "./support/smtp";

const servers: TestSmtp[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function smtp(options: TestSmtpOptions): Promise<TestSmtp> {
  const server = await startSmtpServer(options);
  servers.push(server);
  return server;
}

const EPUB: KindleAttachment = { filename: "Les Misérables - Victor Hugo.epub", contentType: "application/epub+zip", bytes: Buffer.from("PK\u0003\u0004 an EPUB's bytes ".repeat(500)) };

function delivery(url: string): KindleDelivery {
  return { to: "reader_42@kindle.com", from: "reader@gmail.test", transport: { kind: "smtp", url } };
}

/** Sends with the server's CA trusted and the backoff recorded instead of waited. */
async function send(server: { url: string; ca?: string }, attachment = EPUB, trust = true) {
  const sleeps: number[] = [];
  const promise = sendToKindle(delivery(server.url), attachment, {
    deadline: Date.now() + 120_000,
    sleep: async (ms) => void sleeps.push(ms),
    ...(trust && server.ca ? { tls: { ca: server.ca } } : {}),
  });
  return { promise, sleeps };
}

/** The ServiceError a send ends with (it must end with one). */
async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

/** Nothing of the password, encoded or not, in an answer's message or fields. */
function expectNoPassword(err: ServiceError, server: TestSmtp): void {
  const said = `${err.message} ${JSON.stringify(err.details)}`;
  expect(said).not.toContain(server.password);
  expect(said).not.toContain(encodeURIComponent(server.password));
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
    const { promise, sleeps } = await send(server);
    const sent = await promise;
    expect(sent).toMatchObject({ attempts: 1, transport: "smtp" });
    expect(sleeps).toEqual([]);
    expect(server.received).toHaveLength(1);
    const [{ parsed, raw, envelope }] = server.received;
    expect(envelope).toEqual({ from: "reader@gmail.test", to: ["reader_42@kindle.com"] });
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((a) => a.address) : []).toEqual(["reader_42@kindle.com"]);
    expect(parsed.from?.value.map((a) => a.address)).toEqual(["reader@gmail.test"]);
    // Present and empty (RFC 5322 §3.6.5 allows it): the Kindle library then titles the book by its file name.
    expect(raw.toString("latin1")).toMatch(/^Subject: \r\n/m);
    expect(parsed.subject ?? "").toBe("");
    expect(parsed.text?.trim()).toBe(BODY_TEXT);
    expect(parsed.attachments).toHaveLength(1);
    const [attachment] = parsed.attachments;
    expect(attachment.contentType).toBe("application/epub+zip");
    expect(attachment.filename).toBe("Les Misérables - Victor Hugo.epub");
    expect(attachment.contentDisposition).toBe("attachment");
    expect(attachment.content.equals(EPUB.bytes)).toBe(true);
    expect(sent.messageId).toBe(parsed.messageId);
  });

  it("sends a PDF as application/pdf", async () => {
    const server = await smtp({ tls: "starttls" });
    const pdf = { filename: "Manual - Someone.pdf", contentType: "application/pdf" as const, bytes: Buffer.from("%PDF-1.7 …") };
    await (await send(server, pdf)).promise;
    expect(server.received[0].parsed.attachments.map((a) => [a.contentType, a.filename])).toEqual([["application/pdf", "Manual - Someone.pdf"]]);
  });

  it("names the attachment Title - Author.ext with the characters a file name cannot hold replaced", () => {
    expect(kindleFileName("Les Misérables", "Victor Hugo", "epub")).toBe("Les Misérables - Victor Hugo.epub");
    const odd = kindleFileName('A/B: "C"?', "X\\Y", "pdf");
    expect(odd).toMatch(/\.pdf$/);
    expect(odd).not.toMatch(/[/\\:"?*<>|]/);
  });
});

describe("when the mail does not go", () => {
  it("answers a refused sign-in with KindleMailSignInRefused, says how to make a Gmail app password, never shows the password, and does not retry", async () => {
    const server = await smtp({ tls: "implicit", refuseAuth: true });
    const { promise, sleeps } = await send(server);
    const err = await failure(promise);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailSignInRefused" });
    expect(err.message).toMatch(/app password.*2-Step Verification/);
    expect(err.details).toMatchObject({ smtp_reply: "535 5.7.8" });
    expectNoPassword(err, server);
    expect(sleeps).toEqual([]);
    expect(server.received).toEqual([]);
  });

  it("answers a server that offers no STARTTLS with KindleMailTlsFailed, before the password is sent", async () => {
    const server = await smtp({ tls: "plain-only" });
    const err = await failure((await send(server)).promise);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailTlsFailed" });
    expectNoPassword(err, server);
    expect(server.received).toEqual([]);
  });

  it("answers a certificate the service does not trust with KindleMailTlsFailed", async () => {
    const server = await smtp({ tls: "implicit" });
    const err = await failure((await send(server, EPUB, false)).promise);
    expect(err).toMatchObject({ errorType: "KindleMailTlsFailed" });
    expect(err.message).toMatch(/certificate is not trusted/);
    expect(server.received).toEqual([]);
  });

  it("answers a refused connection with KindleMailUnreachable, naming the server and the Lambda port rule", async () => {
    const port = await closedPort();
    const url = `smtps://reader%40gmail.test:pw@127.0.0.1:${port}`;
    const err = await failure((await send({ url })).promise);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleMailUnreachable" });
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toMatch(/refused the connection.*Port 25 is blocked on AWS Lambda: use port 465/);
  });

  it("retries a 4yz reply after 1 s and sends the book", async () => {
    const server = await smtp({ tls: "starttls", tempFailures: 1 });
    const { promise, sleeps } = await send(server);
    expect(await promise).toMatchObject({ attempts: 2 });
    expect(sleeps).toEqual([1000]);
    expect(server.tempFailed()).toBe(1);
    expect(server.received).toHaveLength(1);
  });

  it("gives up after four 4yz replies (1, 2, 4 s apart) with KindleMailBusy", async () => {
    const server = await smtp({ tls: "starttls", tempFailures: 100 });
    const { promise, sleeps } = await send(server);
    const err = await failure(promise);
    expect(err).toMatchObject({ statusCode: 503, errorType: "KindleMailBusy" });
    expect(sleeps).toEqual([1000, 2000, 4000]);
    expect(server.tempFailed()).toBe(4);
    expect(server.received).toEqual([]);
  });

  it("answers a refused Kindle address with KindleRecipientRefused, not retried", async () => {
    const server = await smtp({ tls: "implicit", refuseRecipient: true });
    const { promise, sleeps } = await send(server);
    const err = await failure(promise);
    expect(err).toMatchObject({ statusCode: 502, errorType: "KindleRecipientRefused" });
    expect(err.message).toContain("reader_42@kindle.com");
    expect(sleeps).toEqual([]);
  });

  it("refuses a book too big for the transport before connecting at all, with KindleBookTooBig (413)", async () => {
    const limit = maxBookBytes({ kind: "smtp", url: "smtps://u:p@h:465" });
    // Gmail's 25 MB message holds a little under 3/4 of that as base64-encoded book.
    expect(limit).toBeGreaterThan(18_000_000);
    expect(limit).toBeLessThan(18_750_000);
    const port = await closedPort();
    const big = { ...EPUB, bytes: Buffer.alloc(limit + 1) };
    const err = await failure((await send({ url: `smtps://u%40x.test:p@127.0.0.1:${port}` }, big)).promise);
    expect(err).toMatchObject({ statusCode: 413, errorType: "KindleBookTooBig", details: { size_bytes: limit + 1, limit_bytes: limit } });
    // The largest book that fits is sent whole.
    const server = await smtp({ tls: "implicit" });
    await (await send(server, { ...EPUB, bytes: Buffer.alloc(limit, 7) })).promise;
    expect(server.received[0].parsed.attachments[0].content.length).toBe(limit);
  }, 120_000);
});
