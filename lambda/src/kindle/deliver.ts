import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { KindleSettings } from "../config";
import type { KindleSent } from "../contract";
import { ServiceError } from "../errors";
import type { Logger } from "../log";
import { kindleFileName, sendToKindle, type KindleAttachment, type SendOptions } from "./mail";
import { kindlePreflight } from "./preflight";

/**
 * Send to Kindle as the service does it: a stored book, pre-flighted when it is an EPUB (on a copy:
 * the download stays the converter's file), named `Title - Author.ext`, mailed through the stack's
 * transport. The SMTP server's URL, which holds its password, is read once per container from the
 * SSM SecureString parameter the stack made (the environment only names it), and never logged.
 */

/** A book to send: its bytes and what the ACSM says of it. */
export interface KindleBook {
  readonly bytes: Buffer;
  readonly contentType: string;
  readonly title?: string | undefined;
  readonly author?: string | undefined;
  /** The book's language, when known (the EPUB pre-flight's `dc:language` when the book has none valid). */
  readonly language?: string | undefined;
}

/** How the mailer is reached, where it is not the stack's (knock serve, tests). */
export interface KindleSeams {
  /** The SMTP URL. @default read from the SSM parameter the settings name */
  readonly smtpUrl: () => Promise<string>;
  /** Extra CA for the SMTP server's certificate (tests' self-signed server). */
  readonly tls: SendOptions["tls"];
  /** How the pause between retries of a 4xx reply is waited. @default setTimeout */
  readonly sleep: (ms: number) => Promise<void>;
}

/** 400: a conversion or `POST /kindle` asked for Send to Kindle, which this service has not set up. */
export class KindleNotConfiguredError extends ServiceError {
  constructor() {
    super(
      400,
      "KindleNotConfigured",
      "Send to Kindle is not set up on this service: set kindle_address, kindle_from and the secret kindle_smtp_url (docs/configuration.md, \"Send to Kindle\") and run pulumi up; the book can be downloaded meanwhile.",
    );
  }
}

/** 500: the stack's SMTP parameter cannot be read (removed, or the role lost its grant). */
export class KindleMisconfiguredError extends ServiceError {
  constructor(parameter: string, why: string) {
    super(500, "KindleMisconfigured", `The SMTP server's settings (SSM parameter ${parameter}) cannot be read: ${why}. Run pulumi up to restore them.`, { parameter });
  }
}

/** The sent message as the answer shows it. */
function sentAnswer(to: string, transport: "smtp" | "ses", messageId: string, attachment: KindleAttachment, fixes: readonly string[]): KindleSent {
  return {
    sent: true,
    message_id: messageId,
    to,
    transport,
    attachment_name: attachment.filename,
    attachment_bytes: attachment.bytes.length,
    preflight_fixes: fixes,
    message:
      `The book was sent to ${to}; Amazon sends no receipt. Check the Kindle in a few minutes; if it does not arrive, ` +
      "look in the sender's inbox for Amazon's failure notice (and check that the sender is on your Approved Personal Document E-mail List).",
  };
}

/** Sends books to the configured Kindle; one per container. */
export class Kindle {
  private smtpUrl: Promise<string> | undefined;

  constructor(
    private readonly settings: KindleSettings,
    private readonly seams: Partial<KindleSeams> = {},
  ) {}

  /** The Kindle address books go to. */
  get to(): string {
    return this.settings.to;
  }

  /** Pre-flights, names and sends `book`; `deadline` is epoch ms. Throws the mail's own errors (mail-errors.ts). */
  async send(book: KindleBook, deadline: number, log: Logger): Promise<KindleSent> {
    const pdf = book.contentType === "application/pdf";
    const { bytes, fixes } = pdf ? { bytes: book.bytes, fixes: [] as string[] } : await this.preflight(book, log);
    const attachment: KindleAttachment = {
      filename: kindleFileName(book.title, book.author, pdf ? "pdf" : "epub"),
      contentType: pdf ? "application/pdf" : "application/epub+zip",
      bytes,
    };
    const { settings } = this;
    const transport = settings.transport === "smtp" ? { kind: "smtp" as const, url: await this.readSmtpUrl() } : { kind: "ses" as const, region: settings.region };
    const sent = await sendToKindle({ to: settings.to, from: settings.from, transport }, attachment, {
      deadline,
      ...(this.seams.sleep === undefined ? {} : { sleep: this.seams.sleep }),
      ...(this.seams.tls === undefined ? {} : { tls: this.seams.tls }),
    });
    log.info("book sent to the Kindle", { transport: sent.transport, attempts: sent.attempts, attachment_bytes: bytes.length, preflight_fixes: fixes.length });
    return sentAnswer(settings.to, sent.transport, sent.messageId, attachment, fixes);
  }

  /** The EPUB's pre-flighted copy and what was fixed, in words. */
  private async preflight(book: KindleBook, log: Logger): Promise<{ bytes: Buffer; fixes: string[] }> {
    const result = await kindlePreflight(book.bytes, book.language === undefined ? {} : { language: book.language });
    const fixes = result.fixes.map((f) => `${f.file}: ${f.detail}`);
    if (fixes.length > 0) log.info("kindle pre-flight fixed the EPUB's copy", { fixes: result.fixes.map((f) => f.fix) });
    return { bytes: result.bytes, fixes };
  }

  private readSmtpUrl(): Promise<string> {
    const { settings } = this;
    if (settings.transport !== "smtp") throw new Error("readSmtpUrl without an SMTP transport");
    if (this.seams.smtpUrl !== undefined) return this.seams.smtpUrl();
    // Once per container; a failure is not kept, so the next request reads again.
    this.smtpUrl ??= readParameter(settings.smtpParameter).catch((err: unknown) => {
      this.smtpUrl = undefined;
      throw err;
    });
    return this.smtpUrl;
  }
}

/** The SecureString's value, decrypted (the role's ssm:GetParameter on this one parameter; aws/ssm's key needs no kms grant). */
async function readParameter(name: string): Promise<string> {
  try {
    const out = await new SSMClient({}).send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    const value = out.Parameter?.Value;
    if (!value) throw new KindleMisconfiguredError(name, "it is empty");
    return value;
  } catch (err) {
    if (err instanceof ServiceError) throw err;
    const code = (err as { name?: string }).name ?? "an error";
    throw new KindleMisconfiguredError(name, code === "ParameterNotFound" ? "it does not exist" : code === "AccessDeniedException" ? "the function's role may not read it" : code);
  }
}
