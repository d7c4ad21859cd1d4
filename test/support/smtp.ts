// A real SMTP server on 127.0.0.1 for tests that mail a book: `smtp-server` (the nodemailer
// project's server, 3.x) with a self-signed certificate for 127.0.0.1, speaking implicit TLS (port
// 465's way, smtps://), STARTTLS (587's, smtp://) or no TLS at all, AUTH PLAIN/LOGIN against one
// user and password, and the refusals a test needs: the sign-in, the recipient, the first messages
// with a 4yz reply, a message over a size limit. Every message it takes is kept raw and parsed with
// `mailparser` (the same project's parser). Shared by the mail, handler, browser and CLI tests.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";

export interface SmtpServerOptions {
  /**
   * `implicit` (default): TLS from the first byte, an smtps:// URL; `starttls`: plain, STARTTLS
   * offered, AUTH only after it, an smtp:// URL; `none`: no STARTTLS offered and AUTH accepted in
   * the clear, so a client that would send its password unencrypted shows up in {@link TestSmtpServer.signIns}.
   */
  readonly tls?: "implicit" | "starttls" | "none";
  /** `accept` (default): the right user and password sign in; `refuse`: every AUTH gets 535 5.7.8 (Gmail's answer to a wrong password). */
  readonly auth?: "accept" | "refuse";
  /** @default "reader@gmail.test" */
  readonly user?: string;
  /** @default a password with a space and a character that must be percent-encoded in the URL */
  readonly password?: string;
  /** Answer RCPT TO with 550 5.1.1. */
  readonly refuseRecipient?: boolean;
  /** Answer the first N messages' DATA with 451 4.3.0 (a transient failure, RFC 5321 §4.2.1). */
  readonly tempFailures?: number;
  /** Take the first message's data and never answer it: a server that hangs mid-transaction. */
  readonly stallAfterData?: boolean;
  /** Refuse messages larger than this with 552 at the end of DATA, and advertise it with SIZE (RFC 1870). */
  readonly maxMessageBytes?: number;
  /** `false`: advertise SIZE without its number, so a client learns the limit only from the 552 (smtp-server's hideSize). @default true */
  readonly advertiseSize?: boolean;
}

/** A message the server took. */
export interface ReceivedMail {
  readonly raw: Buffer;
  readonly parsed: ParsedMail;
  /** MAIL FROM and RCPT TO. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
}

/** An AUTH the server saw: whether the connection was encrypted, and whether it let the user in. */
export interface SignIn {
  readonly secure: boolean;
  readonly accepted: boolean;
}

export interface TestSmtpServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The server's SMTP URL for its user (the form kindle_smtp_url takes), user and password percent-encoded. */
  readonly url: string;
  /** The certificate (PEM) to trust: self-signed, it is its own CA. */
  readonly ca: string;
  /** Messages taken, in order (the array fills as they arrive). */
  readonly messages: readonly ReceivedMail[];
  /** Same array as {@link messages}. */
  readonly received: readonly ReceivedMail[];
  /** Every AUTH command's outcome, in order. */
  readonly signIns: readonly SignIn[];
  /** How many messages' DATA it answered 451. */
  tempFailed(): number;
  /** How many messages' DATA it left unanswered ({@link SmtpServerOptions.stallAfterData}). */
  stalled(): number;
  /** Resolves once `count` messages were taken; rejects after `timeoutMs` (a ceiling, not a pause). */
  waitForMessages(count: number, timeoutMs?: number): Promise<readonly ReceivedMail[]>;
  close(): Promise<void>;
}

/** @deprecated the earlier names, kept for the tests that use them */
export type TestSmtpOptions = SmtpServerOptions;
/** @deprecated the earlier name */
export type TestSmtp = TestSmtpServer;

const DEFAULT_USER = "reader@gmail.test";
const DEFAULT_PASSWORD = "abcd efgh/ijkl mnop-secret";

let certificateOnce: { key: string; cert: string } | undefined;

/**
 * A key and a self-signed certificate valid for the address 127.0.0.1 (openssl as Debian ships
 * it), made once per test process: an RSA key takes a noticeable share of a second on two cores.
 */
function certificate(): { key: string; cert: string } {
  if (certificateOnce !== undefined) return certificateOnce;
  const dir = mkdtempSync(join(tmpdir(), "knock-smtp-cert-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
      { stdio: "ignore" },
    );
    certificateOnce = { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
    return certificateOnce;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An error smtp-server answers with this reply code (its callbacks read `responseCode`). */
function reply(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

/** Starts a server on an ephemeral port of 127.0.0.1. */
export async function start(options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const { key, cert } = certificate();
  const tls = options.tls ?? "implicit";
  const user = options.user ?? DEFAULT_USER;
  const password = options.password ?? DEFAULT_PASSWORD;
  const messages: ReceivedMail[] = [];
  const signIns: SignIn[] = [];
  const waiters = new Set<() => void>();
  let tempFailed = 0;
  let stalled = 0;

  const settings: SMTPServerOptions = {
    secure: tls === "implicit",
    key,
    cert,
    hideSTARTTLS: tls === "none",
    disabledCommands: tls === "none" ? ["STARTTLS"] : [],
    // As submission servers do, AUTH only over TLS (RFC 8314 §3.3 for 465, RFC 3207 for STARTTLS);
    // without TLS it is let through, so that a client leaking its password is seen, not hidden.
    allowInsecureAuth: tls === "none",
    authMethods: ["PLAIN", "LOGIN"],
    ...(options.maxMessageBytes === undefined ? {} : { size: options.maxMessageBytes, hideSize: options.advertiseSize === false }),
    logger: false,
    onAuth(auth, session, done) {
      const accepted = options.auth !== "refuse" && auth.username === user && auth.password === password;
      signIns.push({ secure: session.secure, accepted });
      if (!accepted) return done(reply(535, "5.7.8 Username and Password not accepted"));
      done(null, { user });
    },
    onRcptTo(_address, _session, done) {
      if (options.refuseRecipient) return done(reply(550, "5.1.1 The email account that you tried to reach does not exist"));
      done();
    },
    onData(stream, session, done) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        // smtp-server only marks a message past `size`; the answer is the server's (RFC 1870 §6.3: 552).
        if (stream.sizeExceeded) return done(reply(552, "5.3.4 Message size exceeds fixed maximum message size"));
        if (options.stallAfterData) {
          stalled++;
          return;
        }
        if (tempFailed < (options.tempFailures ?? 0)) {
          tempFailed++;
          return done(reply(451, "4.3.0 Temporary System Problem. Try again later"));
        }
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then(
          (parsed) => {
            const from = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
            messages.push({ raw, parsed, envelope: { from, to: session.envelope.rcptTo.map((r) => r.address) } });
            for (const wake of waiters) wake();
            done();
          },
          (err: Error) => done(err),
        );
      });
    },
  };
  const server = new SMTPServer(settings);
  // A client that gives up mid-handshake (an untrusted certificate) is a socket error here: tests
  // judge the client's answer, so the server only swallows it.
  server.on("error", () => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as AddressInfo).port;
  const scheme = tls === "implicit" ? "smtps" : "smtp";

  const waitForMessages = (count: number, timeoutMs = 60_000): Promise<readonly ReceivedMail[]> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (messages.length < count) return false;
        waiters.delete(wake);
        clearTimeout(timer);
        resolve(messages);
        return true;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`The test SMTP server took ${messages.length} message(s) in ${timeoutMs} ms, not ${count}.`));
      }, timeoutMs);
      waiters.add(wake);
      check();
    });

  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    url: `${scheme}://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    ca: cert,
    messages,
    received: messages,
    signIns,
    tempFailed: () => tempFailed,
    stalled: () => stalled,
    waitForMessages,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** @deprecated the earlier name of {@link start} */
export const startSmtpServer = start;
