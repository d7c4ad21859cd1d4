// A real SMTP server on 127.0.0.1 for the Send to Kindle tests: `smtp-server` (the nodemailer
// project's server, 3.x) with a self-signed certificate for 127.0.0.1, implicit TLS (port 465's way)
// or STARTTLS (587's), AUTH PLAIN/LOGIN against one user and password, and what a test needs to
// refuse: the sign-in, the recipient, or the first messages with a 4yz reply. Every message it takes
// is kept raw and parsed with `mailparser` (the same project's parser).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

export interface TestSmtpOptions {
  /** `implicit`: TLS from the first byte (smtps://); `starttls`: plain, then STARTTLS (smtp://); `plain-only`: no STARTTLS offered. */
  readonly tls: "implicit" | "starttls" | "plain-only";
  /** Answer every AUTH with 535 5.7.8 (Gmail's answer to a wrong password). */
  readonly refuseAuth?: boolean;
  /** Answer RCPT TO with 550 5.1.1. */
  readonly refuseRecipient?: boolean;
  /** Answer the first N messages' DATA with 451 4.3.0 (a transient failure, RFC 5321 §4.2.1). */
  readonly tempFailures?: number;
}

/** A message the server took. */
export interface ReceivedMail {
  readonly raw: Buffer;
  readonly parsed: ParsedMail;
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
}

export interface TestSmtp {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The SMTP URL of this server for its user (the form kindle_smtp_url takes). */
  readonly url: string;
  /** The certificate (PEM) to trust: its own CA. */
  readonly ca: string;
  readonly received: ReceivedMail[];
  /** How many DATA commands it answered 451. */
  tempFailed(): number;
  close(): Promise<void>;
}

/** A key and a self-signed certificate valid for the address 127.0.0.1 (openssl, as Debian ships it). */
function certificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "knock-smtp-cert-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An error smtp-server answers with this reply code (its callbacks read `responseCode`). */
function reply(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

export async function startSmtpServer(options: TestSmtpOptions): Promise<TestSmtp> {
  const { key, cert } = certificate();
  const user = "reader@gmail.test";
  const password = "abcd efgh ijkl mnop-secret";
  const received: ReceivedMail[] = [];
  let tempFailed = 0;
  const server = new SMTPServer({
    secure: options.tls === "implicit",
    key,
    cert,
    hideSTARTTLS: options.tls === "plain-only",
    disabledCommands: options.tls === "plain-only" ? ["STARTTLS"] : [],
    // As submission servers do: AUTH only over TLS (RFC 8314 §3.3 for 465, RFC 3207 for STARTTLS).
    allowInsecureAuth: false,
    authMethods: ["PLAIN", "LOGIN"],
    logger: false,
    onAuth(auth, _session, done) {
      if (options.refuseAuth || auth.username !== user || auth.password !== password) return done(reply(535, "5.7.8 Username and Password not accepted"));
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
        if (tempFailed < (options.tempFailures ?? 0)) {
          tempFailed++;
          return done(reply(451, "4.3.0 Temporary System Problem. Try again later"));
        }
        const raw = Buffer.concat(chunks);
        void simpleParser(raw).then((parsed) => {
          const from = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
          received.push({ raw, parsed, envelope: { from, to: session.envelope.rcptTo.map((r) => r.address) } });
          done();
        }, (err: Error) => done(err));
      });
    },
  });
  // A client that gives up mid-handshake (an untrusted certificate) is a socket error here: the
  // tests judge the client's answer, so the server only notes it.
  const socketErrors: Error[] = [];
  server.on("error", (err: Error) => socketErrors.push(err));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as AddressInfo).port;
  const scheme = options.tls === "implicit" ? "smtps" : "smtp";
  return {
    port,
    user,
    password,
    url: `${scheme}://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    ca: cert,
    received,
    tempFailed: () => tempFailed,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
