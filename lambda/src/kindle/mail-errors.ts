/**
 * Why a book could not be handed to the mail system, each as its own answer (docs/api.md, "Sending
 * to a Kindle"), and how a failure of nodemailer's SMTP or SES transport is told apart.
 *
 * The messages never contain the SMTP URL, its password or the server's reply text (a server may
 * echo what it was sent, AUTH data included): only the reply code (RFC 5321 §4.2) and the enhanced
 * status code (RFC 3463). None says the book was delivered: the mail system accepting a message is
 * not Amazon putting it on the Kindle, and only the handler words a success.
 */
import { ServiceError, runsOnLambda } from "../errors";

const PORT_HINT = "Port 25 is blocked on AWS Lambda: use port 465 (smtps://) or 587 (smtp://, STARTTLS).";

/**
 * 413: the book is larger than the transport can carry to a Kindle. The book itself is fine, so the
 * answer hands over its download link (`download_url`) when the caller has one.
 */
export class KindleBookTooBigError extends ServiceError {
  constructor(sizeBytes: number, limitBytes: number, why: string, downloadUrl?: string) {
    super(
      413,
      "KindleBookTooBig",
      `The book is ${megabytes(sizeBytes)} (${sizeBytes} bytes), more than the ${megabytes(limitBytes)} (${limitBytes} bytes) of book one ` +
        `message to a Kindle can carry here (${why}; Send to Kindle by e-mail takes at most 50 MB), so it was not sent. ` +
        `${downloadUrl === undefined ? "The download link still works" : "The download link (download_url) still works"}: download the book and copy it to the Kindle over USB or with Amazon's Send to Kindle app.`,
      { size_bytes: sizeBytes, limit_bytes: limitBytes, ...(downloadUrl === undefined ? {} : { download_url: downloadUrl }) },
    );
  }
}

/** 502: the mail server or SES refused the credentials (SMTP 534/535 or nodemailer's EAUTH; SES access denied). */
export class KindleMailSignInRefusedError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "KindleMailSignInRefused", message, details);
  }
}

/** 502: no connection to the mail server: refused, not answered, or its name does not resolve. */
export class KindleMailUnreachableError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "KindleMailUnreachable", message, details);
  }
}

/** 502: the TLS connection failed: certificate not trusted, handshake failed, STARTTLS not offered. */
export class KindleMailTlsFailedError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "KindleMailTlsFailed", message, details);
  }
}

/** 502: the server refused the Kindle address (a 5yz reply to RCPT TO). */
export class KindleRecipientRefusedError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "KindleRecipientRefused", message, details);
  }
}

/** 502: the server or SES refused the sender or the message itself (5yz to MAIL FROM or DATA; SES MessageRejected, unverified domain, paused account). */
export class KindleMailRefusedError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "KindleMailRefused", message, details);
  }
}

/** 503: the server answered "try again later" (4yz, SES throttling) on every attempt the time allowed. */
export class KindleMailBusyError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(503, "KindleMailBusy", message, details);
  }
}

/** 504: the invocation's time ran out before the mail server had taken the message. */
export class KindleMailTimeoutError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(504, "KindleMailTimeout", message, details);
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The fields of a nodemailer error this module reads (nodemailer 10's errors.ts: `code`, `responseCode`, `command`, `originalCode`). */
export interface MailerFailure {
  readonly code?: unknown;
  readonly originalCode?: unknown;
  readonly responseCode?: unknown;
  readonly response?: unknown;
  readonly command?: unknown;
  /** Which of nodemailer's timers ran out (smtp-connection's timeoutError): CONNECT_, GREETING_, UPGRADE_ or SOCKET_TIMEOUT. */
  readonly timeoutType?: unknown;
  readonly message?: unknown;
  readonly name?: unknown;
  readonly $fault?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: unknown };
}

/** What one failed attempt means: try again (with what to say if the budget ends), or this answer. */
export type Verdict = { readonly transient: true; readonly reply: string } | { readonly transient: false; readonly error: Error };

/** The book a failed message carried, for a too-big answer. */
export interface BookContext {
  readonly sizeBytes: number;
  readonly limitBytes: number;
  readonly why: string;
  /** The book's download link, handed back when the book is too big to mail. */
  readonly downloadUrl?: string | undefined;
}

/** Where a message went, for the texts. */
export interface MailContext {
  readonly host: string;
  readonly port: number;
  readonly to: string;
  readonly from: string;
}

/** `421 4.7.0` from a reply: the code and the enhanced status code (RFC 3463), never the text. */
export function replyCode(failure: MailerFailure): string | undefined {
  if (typeof failure.responseCode !== "number") return undefined;
  const enhanced = typeof failure.response === "string" ? /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(failure.response)?.[1] : undefined;
  return enhanced ? `${failure.responseCode} ${enhanced}` : String(failure.responseCode);
}

/**
 * Codes Node's TLS layer (OpenSSL) gives a failed handshake or an untrusted certificate; nodemailer
 * keeps them as `originalCode` when it files the failure as ESOCKET (smtp-connection's
 * _formatError), which is how a certificate failure of an implicit-TLS (465) connection arrives.
 */
const TLS_NODE_CODE = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_SSL_|ERR_TLS_|^EPROTO$|HOSTNAME|ALTNAME/;

/** Node's socket codes for a connection that was not made, and what the text says about each. */
const CONNECT_NODE_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "refused the connection (nothing listens on that port, or a firewall rejects it)",
  ETIMEDOUT: "did not answer the connection (a firewall drops it, or the host is down)",
  ENETUNREACH: "is on a network this machine cannot reach",
  EHOSTUNREACH: "cannot be reached from this machine",
  ECONNRESET: "reset the connection",
  EPIPE: "closed the connection",
  ENOTFOUND: "does not resolve (no such host name)",
  EAI_AGAIN: "could not be resolved (DNS did not answer)",
};

/**
 * Files a failure of nodemailer's SMTP transport. Order matters:
 * 1. any 4yz reply is transient (RFC 5321 §4.2.1: "Transient Negative Completion"), whatever the
 *    command: 421 to the greeting, 450/451/452 to MAIL, RCPT or DATA, 454 to AUTH (RFC 4954 §6,
 *    temporary authentication failure) or STARTTLS (RFC 3207 §4);
 * 2. sign-in: nodemailer's EAUTH (and ENOAUTH), or 534/535 (RFC 4954 §6: 535 "authentication
 *    credentials invalid", 534 "mechanism is too weak", which Gmail answers when an account needs an
 *    app password);
 * 3. TLS: ETLS (STARTTLS refused or its handshake failed), EREQUIRETLS, a STARTTLS handshake that
 *    timed out, or a socket failure whose Node code is a TLS one;
 * 4. the session went quiet after it had started (SOCKET_TIMEOUT): the server may have the message,
 *    so this is a timeout that says so, not "unreachable";
 * 5. no connection: EDNS, ECONNECTION, ESOCKET, ETIMEDOUT while connecting (command CONN);
 * 6. 5yz to RCPT TO (EENVELOPE): the Kindle address; 552 after DATA or nodemailer's own SIZE
 *    refusal (RFC 1870): too big; any other 5yz: the message or the sender was refused.
 * Nothing permanent is retried: RFC 5321 §4.2.1 says a 5yz reply means the same request will fail again.
 * Anything else becomes a plain error naming only nodemailer's code: its message carries the
 * server's reply text, which may echo the sign-in.
 */
export function classifySmtpFailure(err: unknown, ctx: MailContext, book: BookContext): Verdict {
  const f = (typeof err === "object" && err !== null ? err : {}) as MailerFailure;
  const code = typeof f.code === "string" ? f.code : "";
  const nodeCode = typeof f.originalCode === "string" ? f.originalCode : "";
  const status = typeof f.responseCode === "number" ? f.responseCode : 0;
  const timeout = typeof f.timeoutType === "string" ? f.timeoutType : "";
  const reply = replyCode(f);
  const server = `${ctx.host}:${ctx.port}`;
  const details: Record<string, unknown> = { mail_server: server, ...(reply ? { smtp_reply: reply } : {}), ...(code ? { mailer_error: code } : {}) };
  const where = runsOnLambda() ? "The service" : "This machine";

  if (status >= 400 && status < 500) return { transient: true, reply: reply ?? String(status) };

  if (code === "EAUTH" || code === "ENOAUTH" || status === 534 || status === 535) {
    return {
      transient: false,
      error: new KindleMailSignInRefusedError(
        `The mail server ${server} refused to sign in${reply ? ` (SMTP ${reply})` : ""}: the user name or password in the SMTP URL is not accepted. ` +
          "For Gmail, the password must be an app password (Google Account → Security → App passwords), which needs 2-Step Verification; " +
          "the user is the whole address, written you%40gmail.com in the URL. Store the corrected URL as the secret again and deploy. The book was not sent.",
        details,
      ),
    };
  }

  if (code === "ETLS" || code === "EREQUIRETLS" || timeout === "UPGRADE_TIMEOUT" || TLS_NODE_CODE.test(nodeCode) || (code === "ESOCKET" && /certificate|ssl|tls/i.test(String(f.message ?? "")))) {
    const what =
      code === "ETLS" && status >= 500
        ? "the server does not offer STARTTLS, and the service never sends the password or the book unencrypted"
        : timeout === "UPGRADE_TIMEOUT"
          ? "the TLS handshake did not finish in time"
          : /CERT|SELF_SIGNED|UNABLE_TO_|HOSTNAME|ALTNAME/.test(nodeCode) || /certificate/i.test(String(f.message ?? ""))
            ? `its certificate is not trusted for that name${nodeCode ? ` (${nodeCode})` : ""}`
            : `the TLS handshake failed${nodeCode ? ` (${nodeCode})` : ""}`;
    return {
      transient: false,
      error: new KindleMailTlsFailedError(
        `The encrypted connection to the mail server ${server} failed: ${what}. Use smtps:// with port 465 (TLS from the start) or smtp:// with port 587 (STARTTLS), ` +
          "with the server's own host name (for Gmail: smtp.gmail.com), whose certificate is valid for it. The book was not sent.",
        { ...details, ...(nodeCode ? { tls_error: nodeCode } : {}) },
      ),
    };
  }

  // nodemailer files the inactivity timeout of a running session under CONN too; only its
  // timeoutType tells it from a connection that was never made.
  if (code === "ETIMEDOUT" && timeout === "SOCKET_TIMEOUT") return { transient: false, error: stalled(server, ctx, details) };

  if (code === "EDNS" || ((code === "ECONNECTION" || code === "ESOCKET" || code === "ETIMEDOUT") && (f.command === "CONN" || f.command === undefined))) {
    const how =
      CONNECT_NODE_CODES[nodeCode] ??
      (code === "EDNS"
        ? "does not resolve"
        : timeout === "GREETING_TIMEOUT"
          ? "took the connection but never greeted (a server on port 465 speaks TLS from the first byte and needs smtps://)"
          : code === "ETIMEDOUT"
            ? "did not answer the connection in time"
            : "closed the connection");
    return {
      transient: false,
      error: new KindleMailUnreachableError(`${where} could not reach the mail server ${server}: it ${how}. ${PORT_HINT} Check the host name in the SMTP URL. The book was not sent.`, {
        ...details,
        ...(nodeCode ? { socket_error: nodeCode } : {}),
      }),
    };
  }

  if (code === "EENVELOPE" && f.command === "RCPT TO") {
    return {
      transient: false,
      error: new KindleRecipientRefusedError(
        `The mail server ${server} refused the Kindle address ${ctx.to}${reply ? ` (SMTP ${reply})` : ""}. Check the address in Amazon's ` +
          `Personal Document Settings (Manage Your Content and Devices → Preferences) and that ${ctx.from} is on its Approved Personal Document E-mail List. The book was not sent.`,
        details,
      ),
    };
  }

  if (status === 552 || (code === "EMESSAGE" && /larger than allowed/i.test(String(f.message ?? "")))) {
    return { transient: false, error: new KindleBookTooBigError(book.sizeBytes, book.limitBytes, `the mail server ${server} refused a message this large`, book.downloadUrl) };
  }

  if (status >= 500 || code === "EENVELOPE" || code === "EMESSAGE") {
    const which =
      f.command === "MAIL FROM"
        ? `the sender ${ctx.from}: the SMTP account must be allowed to send as that address (for Gmail, the account's own address or an alias added under "Send mail as")`
        : "the message";
    return {
      transient: false,
      error: new KindleMailRefusedError(`The mail server ${server} refused ${which}${reply ? ` (SMTP ${reply})` : ""}. The book was not sent.`, details),
    };
  }

  if (code === "ETIMEDOUT" || code === "EABORT") return { transient: false, error: stalled(server, ctx, details) };

  // A programming error (no nodemailer code) keeps its own message and stack; a mailer failure is
  // told by its code alone, because nodemailer appends the server's reply to its message.
  if (code === "" && err instanceof Error) return { transient: false, error: err };
  return { transient: false, error: new Error(`Sending the book through the mail server ${server} failed (nodemailer ${code || "error"}${reply ? `, SMTP ${reply}` : ""}). The book was not sent.`) };
}

function stalled(server: string, ctx: MailContext, details: Record<string, unknown>): KindleMailTimeoutError {
  return new KindleMailTimeoutError(
    `The mail server ${server} stopped answering while it was sent the message: it may or may not have taken it. Check the Kindle (and the inbox of ${ctx.from} for Amazon's notice) in a few minutes before sending it again.`,
    details,
  );
}

/**
 * Files a failure of SendEmail through nodemailer's SES transport (which passes the SDK's error on,
 * tagged ESES). The names are SES v2's documented errors of SendEmail (SES API v2 Reference,
 * SendEmail, "Errors": AccountSuspendedException, BadRequestException, LimitExceededException,
 * MailFromDomainNotVerifiedException, MessageRejected, NotFoundException, SendingPausedException,
 * TooManyRequestsException) and the errors every AWS API answers (AccessDeniedException,
 * UnrecognizedClientException, ThrottlingException, …). Throttling and server faults are transient;
 * LimitExceededException (the daily quota) does not clear within a request and answers at once.
 */
export function classifySesFailure(err: unknown, ctx: { readonly region: string; readonly to: string; readonly from: string }): Verdict {
  const f = (typeof err === "object" && err !== null ? err : {}) as MailerFailure;
  const name = typeof f.name === "string" ? f.name : "";
  const http = typeof f.$metadata?.httpStatusCode === "number" ? f.$metadata.httpStatusCode : 0;
  const details = { ses_region: ctx.region, ses_error: name };
  const ses = `Amazon SES (${ctx.region})`;
  const refused = (why: string): Verdict => ({ transient: false, error: new KindleMailRefusedError(`${ses} refused the message (${name}): ${why} The book was not sent.`, details) });

  if (name === "TooManyRequestsException" || name === "ThrottlingException" || name === "Throttling" || f.$fault === "server" || http >= 500) {
    return { transient: true, reply: name || `HTTP ${http}` };
  }
  switch (name) {
    case "LimitExceededException":
      return {
        transient: false,
        error: new KindleMailBusyError(`${ses} refused the message because the account's sending quota is used up (${name}). The book was not sent; try again tomorrow, or ask AWS for a higher quota.`, details),
      };
    case "MessageRejected":
      return refused(
        `SES refused its content or its recipient. An account still in the SES sandbox sends only to verified addresses, and a Kindle address can never be verified: request production access. `,
      );
    case "MailFromDomainNotVerifiedException":
      return refused(`the domain of ${ctx.from} (or its custom MAIL FROM domain) is not verified in this region: verify it, with DKIM, in SES.`);
    case "SendingPausedException":
      return refused("sending is paused for this account or configuration set: resume it in SES (Reputation or Account dashboard).");
    case "AccountSuspendedException":
      return refused("the account's ability to send with SES has been suspended: see the SES account dashboard.");
    case "NotFoundException":
      return refused(`SES has no identity or configuration set for ${ctx.from} in this region: verify the sender's domain in ${ctx.region}.`);
    case "BadRequestException":
      return refused("SES found the request invalid.");
    case "AccessDeniedException":
    case "AccessDenied":
    case "UnrecognizedClientException":
    case "InvalidSignatureException":
    case "ExpiredTokenException":
      return {
        transient: false,
        error: new KindleMailSignInRefusedError(
          `${ses} refused the function's credentials (${name}): its role needs ses:SendRawEmail and ses:SendEmail on the identity of ${ctx.from}. Deploy again with pulumi up. The book was not sent.`,
          details,
        ),
      };
  }
  const nodeCode = typeof f.code === "string" ? f.code : "";
  if (nodeCode in CONNECT_NODE_CODES || name === "TimeoutError") {
    return {
      transient: false,
      error: new KindleMailUnreachableError(`${runsOnLambda() ? "The service" : "This machine"} could not reach ${ses}: it ${CONNECT_NODE_CODES[nodeCode] ?? "did not answer in time"}. The book was not sent.`, details),
    };
  }
  return { transient: false, error: err instanceof Error ? err : new Error(String(err)) };
}
