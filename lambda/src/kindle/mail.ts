/**
 * Mails a book to a Kindle (Amazon's Send to Kindle by e-mail): one message to the Kindle address,
 * from the sender the user approved at Amazon, with an empty subject, a one-line text and the book
 * as the only attachment, named `Title - Author.epub` (Amazon shows the file name as the title).
 * Sent through nodemailer's SMTP transport (smtps:// on 465 or smtp:// on 587 with STARTTLS
 * required) or its SES transport (SES v2 SendEmail with the raw message).
 *
 * Success here means the mail system took the message, nothing more: Amazon sends no receipt and
 * mails the user only when it refuses a document, so the caller must not call it delivered.
 */
import { SESv2Client, SendEmailCommand } from "@aws-sdk/client-sesv2";
import nodemailer from "nodemailer";
import MailComposer from "nodemailer/lib/mail-composer";
import { KindleBookTooBigError, KindleMailBusyError, KindleMailTimeoutError, classifySesFailure, classifySmtpFailure, type Verdict } from "./mail-errors";
import { KINDLE_MESSAGE_LIMIT_BYTES, type KindleTransport, maxBookBytes, messageLimitReason, parseSmtpUrl, transportMessageLimit } from "./mail-rules";

export * from "./mail-errors";
export { kindleAddressProblem, kindleFileName, maxBookBytes, smtpUrlProblem, KINDLE_DOMAINS, type KindleTransport } from "./mail-rules";

export interface KindleDelivery {
  /** The Send to Kindle address (…@kindle.com). */
  readonly to: string;
  /** The address on the user's Approved Personal Document E-mail List. */
  readonly from: string;
  readonly transport: KindleTransport;
}

export interface KindleAttachment {
  readonly filename: string;
  readonly contentType: "application/epub+zip" | "application/pdf";
  readonly bytes: Buffer;
}

export interface SendOptions {
  /** Epoch ms: give up (and don't start a retry) past this. */
  readonly deadline: number;
  /** Backoff between transient retries; default a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Tests trust their self-signed certificate; production uses the system CAs. */
  readonly tls?: { readonly ca?: string | Buffer };
  /** The SES client; default one for the transport's region. */
  readonly sesClient?: SESv2Client;
  /** The book's download link, given back in a {@link KindleBookTooBigError}'s details (`download_url`). */
  readonly downloadUrl?: string;
}

export interface SentMessage {
  /** The Message-ID the mail system gave the message (SES: its own id, `<…@email.amazonses.com>`). */
  readonly messageId: string;
  readonly attempts: number;
  readonly transport: "smtp" | "ses";
}

/** The message's only text: Amazon ignores the body; a person who opens the message learns what it is. */
export const BODY_TEXT = "Sent by knock-lambda: the attached book, for your Kindle library.";

/** At most this many attempts: the first and three retries after 4yz replies or SES throttling. */
export const MAX_ATTEMPTS = 4;
/** Backoff before retry n (1-based): 1 s, 2 s, 4 s — doubling, as RFC 5321 §4.5.4.1 asks of clients that retry. */
export function backoffMs(retry: number): number {
  return 1000 * 2 ** (retry - 1);
}
/** An attempt starts only with at least this much time left: connecting, TLS, sign-in and a 25 MB upload need it. */
export const MIN_ATTEMPT_MS = 5000;
/** nodemailer's connect and greeting timeouts (its defaults: 2 min and 30 s), cut to half of what the deadline leaves. */
const CONNECT_MS = 10_000;
/** How much later than the deadline's abort the inactivity timer would fire. */
const SOCKET_SLACK_MS = 1000;

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The raw message. nodemailer leaves out a Subject header whose value is empty (mail-composer adds
 * only truthy headers), and Amazon asks for an empty subject (a subject is only read for "convert",
 * which applies to PDFs), so the header is written here: RFC 5322 §3.6.5's `unstructured` may be empty.
 */
export async function composeMessage(delivery: KindleDelivery, attachment: KindleAttachment): Promise<{ readonly raw: Buffer; readonly messageId: string }> {
  const node = new MailComposer({
    from: delivery.from,
    to: delivery.to,
    text: BODY_TEXT,
    attachments: [{ filename: attachment.filename, content: attachment.bytes, contentType: attachment.contentType, contentDisposition: "attachment" }],
    disableFileAccess: true,
    disableUrlAccess: true,
  }).compile();
  const messageId = node.messageId();
  const built = await new Promise<Buffer>((resolve, reject) => node.build((err, out) => (err ? reject(err) : resolve(out))));
  return { raw: Buffer.concat([Buffer.from("Subject: \r\n"), built]), messageId };
}

/**
 * Sends the book. Refuses a book over {@link maxBookBytes} before connecting; retries 4yz replies
 * (and SES throttling) with exponential backoff while the deadline leaves room; answers every other
 * failure at once with its own error (mail-errors.ts).
 */
export async function sendToKindle(delivery: KindleDelivery, attachment: KindleAttachment, options: SendOptions): Promise<SentMessage> {
  const limit = maxBookBytes(delivery.transport);
  const why = messageLimitReason(delivery.transport);
  const tooBig = (): KindleBookTooBigError => new KindleBookTooBigError(attachment.bytes.length, limit, why, options.downloadUrl);
  if (attachment.bytes.length > limit) throw tooBig();
  const { raw, messageId } = await composeMessage(delivery, attachment);
  // The file name's encoding and the headers are inside the overhead maxBookBytes keeps; checked
  // on the real message all the same, so a limit is never sent past.
  if (raw.length > Math.min(transportMessageLimit(delivery.transport), KINDLE_MESSAGE_LIMIT_BYTES)) throw tooBig();

  const sleep = options.sleep ?? defaultSleep;
  const once = delivery.transport.kind === "smtp" ? smtpSender(delivery, delivery.transport.url, raw, attachment, options) : sesSender(delivery, delivery.transport.region, raw, options);
  let last = "";
  for (let attempt = 1; ; attempt++) {
    const left = options.deadline - Date.now();
    if (left < MIN_ATTEMPT_MS) {
      if (attempt === 1) {
        throw new KindleMailTimeoutError(`Too little of the invocation's time was left (${Math.max(left, 0)} ms) to send the book to the Kindle: it was not sent. Try again.`);
      }
      throw busy(delivery, attempt - 1, last);
    }
    let verdict: Verdict;
    try {
      const id = await once(left);
      return { messageId: id || messageId, attempts: attempt, transport: delivery.transport.kind };
    } catch (err) {
      verdict = once.classify(err);
    }
    if (!verdict.transient) throw verdict.error;
    last = verdict.reply;
    if (attempt >= MAX_ATTEMPTS) throw busy(delivery, attempt, last);
    const wait = backoffMs(attempt);
    if (Date.now() + wait + MIN_ATTEMPT_MS > options.deadline) throw busy(delivery, attempt, last);
    await sleep(wait);
  }
}

function busy(delivery: KindleDelivery, attempts: number, reply: string): KindleMailBusyError {
  const who = delivery.transport.kind === "ses" ? `Amazon SES (${delivery.transport.region})` : `The mail server ${parseSmtpUrl(delivery.transport.url).host}`;
  return new KindleMailBusyError(
    `${who} answered "try again later" (${delivery.transport.kind === "ses" ? reply : `SMTP ${reply}`}) on every attempt (${attempts} within the time left). The book was not sent; try again in a few minutes.`,
    { attempts, ...(delivery.transport.kind === "ses" ? { ses_error: reply } : { smtp_reply: reply }) },
  );
}

/** One attempt, given the time left; and how its failure is filed. */
interface Sender {
  (timeLeftMs: number): Promise<string>;
  classify(err: unknown): Verdict;
}

function smtpSender(delivery: KindleDelivery, url: string, raw: Buffer, attachment: KindleAttachment, options: SendOptions): Sender {
  const server = parseSmtpUrl(url);
  const ctx = { host: server.host, port: server.port, to: delivery.to, from: delivery.from };
  const book = { sizeBytes: attachment.bytes.length, limitBytes: maxBookBytes(delivery.transport), why: messageLimitReason(delivery.transport), downloadUrl: options.downloadUrl };
  const send = async (left: number): Promise<string> => {
    const setupMs = Math.min(CONNECT_MS, Math.floor(left / 2));
    const transporter = nodemailer.createTransport({
      host: server.host,
      port: server.port,
      // 465: TLS from the first byte (RFC 8314 §3.3); 587: STARTTLS, required, so the password
      // and the book never cross the network unencrypted (RFC 3207; nodemailer's requireTLS).
      secure: server.implicitTls,
      requireTLS: !server.implicitTls,
      auth: { user: server.user, pass: server.password },
      // Setting up (DNS, TCP, greeting, TLS) gets at most half the time left: the upload needs the
      // rest, and a setup timer that always ends before the inactivity one below is reported as a
      // setup failure (unreachable, TLS), not as a stalled transfer.
      connectionTimeout: setupMs,
      greetingTimeout: setupMs,
      dnsTimeout: setupMs,
      // Inactivity; the attempt as a whole ends at the deadline through the abort signal below,
      // which therefore always comes first and answers one way (EABORT: a timeout that may have
      // reached the server).
      socketTimeout: left + SOCKET_SLACK_MS,
      tls: { minVersion: "TLSv1.2", ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}) },
      logger: false,
      debug: false,
    });
    try {
      // The size goes in MAIL FROM (RFC 1870 SIZE=), and nodemailer checks it against the server's
      // advertised SIZE first: a server that takes less refuses before 25 MB are uploaded to it.
      await transporter.sendMail({ raw, envelope: { from: delivery.from, to: [delivery.to], size: raw.length }, signal: AbortSignal.timeout(left) });
      // The message's own Message-ID (in `raw`) is the one the server and Amazon see; nodemailer's
      // info.messageId for a raw message is one it made up and never sent.
      return "";
    } finally {
      transporter.close();
    }
  };
  return Object.assign(send, { classify: (err: unknown) => classifySmtpFailure(err, ctx, book) });
}

function sesSender(delivery: KindleDelivery, region: string, raw: Buffer, options: SendOptions): Sender {
  const sesClient = options.sesClient ?? new SESv2Client({ region });
  const send = async (): Promise<string> => {
    const transporter = nodemailer.createTransport({ SES: { sesClient, SendEmailCommand } });
    const info = await transporter.sendMail({ raw, envelope: { from: delivery.from, to: [delivery.to] } });
    return typeof info.messageId === "string" ? info.messageId : "";
  };
  return Object.assign(send, { classify: (err: unknown) => classifySesFailure(err, { region, to: delivery.to, from: delivery.from }) });
}
