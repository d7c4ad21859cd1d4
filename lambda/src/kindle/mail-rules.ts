/**
 * What a message to a Kindle may be, and what the settings that send it must look like: the
 * attachment's file name, the largest book a transport carries, the Kindle address and the SMTP URL.
 * Pure string and number logic, so the config check, the handler and the tests share one rule each.
 */

/** How a book reaches the mail system: an SMTP server (a Gmail app password, …) or Amazon SES v2. */
export type KindleTransport =
  | { readonly kind: "smtp"; readonly url: string }
  | { readonly kind: "ses"; readonly region: string };

const MB = 1000 * 1000;

/**
 * Amazon's Send to Kindle by e-mail takes at most 50 MB per message, attachments together (Amazon's
 * help page "Send to Kindle by E-mail": 25 attachments, 15 Kindle addresses, 50 MB in total).
 */
export const KINDLE_MESSAGE_LIMIT_BYTES = 50 * MB;
/**
 * Gmail sends at most 25 MB per message (Gmail Help, "Attach files": "You can send up to 25 MB in
 * attachments"; the encoded message is what counts). Used for every SMTP server: Gmail's app
 * password is the set-up the README describes, and 25 MB is also what most other providers allow;
 * a server that takes less says so with SIZE (RFC 1870) or 552, and the answer is the same 413.
 */
export const SMTP_MESSAGE_LIMIT_BYTES = 25 * MB;
/**
 * SES v2's SendEmail takes messages up to 40 MB after base64 encoding, attachments and headers
 * included (SES Developer Guide, "Service quotas in Amazon SES": maximum message size).
 */
export const SES_MESSAGE_LIMIT_BYTES = 40 * MB;
/**
 * Room kept for everything in the message that is not the book's base64: the headers (SES and DKIM
 * add their own), the text part, the MIME boundaries and the file name's RFC 2231 encoding.
 */
const MESSAGE_OVERHEAD_BYTES = 16 * 1024;

/** The message limit of the transport itself (before Amazon's 50 MB). */
export function transportMessageLimit(transport: KindleTransport): number {
  return transport.kind === "ses" ? SES_MESSAGE_LIMIT_BYTES : SMTP_MESSAGE_LIMIT_BYTES;
}

/** Why {@link maxBookBytes} is what it is, in words for the caller. */
export function messageLimitReason(transport: KindleTransport): string {
  return transport.kind === "ses"
    ? "Amazon SES sends at most 40 MB per message, and base64 makes a file about 37% larger"
    : "the mail server (Gmail's limit) sends at most 25 MB per message, and base64 makes a file about 37% larger";
}

/**
 * The largest book (raw bytes) the transport can carry after base64 and headers: the smaller of the
 * transport's message limit and Amazon's 50 MB. Base64 (RFC 2045 §6.8) turns 57 bytes into a
 * 76-character line plus CRLF, 78 bytes: the book grows by 78/57 (about 3/4 of the room is book).
 * Counted in whole lines plus the last, shorter one (4 characters per 3 bytes, and its CRLF), so
 * the encoded book never passes the room, not even by the rounding of 78/57.
 */
export function maxBookBytes(transport: KindleTransport): number {
  const room = Math.min(transportMessageLimit(transport), KINDLE_MESSAGE_LIMIT_BYTES) - MESSAGE_OVERHEAD_BYTES;
  const lines = Math.floor(room / 78);
  const rest = room - lines * 78;
  return lines * 57 + (rest > 2 ? Math.floor((rest - 2) / 4) * 3 : 0);
}

/**
 * At most this many characters of `Title - Author` before the extension: Amazon shows the name as
 * the document's title, where a long one is cut anyway, and it stays well inside the 255-byte file
 * names of ext4, APFS and NTFS when the reader downloads it again.
 */
const MAX_NAME_CHARS = 100;
/** …and at most this many UTF-8 bytes (a title in CJK script takes 3 bytes a character). */
const MAX_NAME_BYTES = 200;

/**
 * Characters kept in a file name: letters, combining marks and digits of any script, spaces, and
 * punctuation that no file system, mail client or Amazon's converter treats specially. Everything
 * else (`/ \ : * ? " < > |`, controls, quotes, `;`, `%`, emoji) becomes a space.
 */
const UNSAFE_CHARACTER = /[^\p{L}\p{M}\p{N} \-_.,'!&()+]/gu;

function cleanPart(text: string | undefined): string {
  return (text ?? "")
    .normalize("NFC")
    .replace(UNSAFE_CHARACTER, " ")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^[.\s-]+/, "")
    .replace(/[.\s-]+$/, "");
}

function truncate(text: string): string {
  let out = Array.from(text).slice(0, MAX_NAME_CHARS).join("");
  while (Buffer.byteLength(out, "utf8") > MAX_NAME_BYTES) out = Array.from(out).slice(0, -1).join("");
  return out.replace(/[.\s-]+$/, "");
}

/**
 * `Title - Author.epub` with only safe characters (what Amazon shows as the title), bounded length;
 * falls back to "book" when the title has nothing left, and to the title alone without an author.
 */
export function kindleFileName(title: string | undefined, author: string | undefined, extension: "epub" | "pdf"): string {
  const t = cleanPart(title);
  const a = cleanPart(author);
  const stem = truncate(t === "" ? "book" : a === "" ? t : `${t} - ${a}`);
  return `${stem === "" ? "book" : stem}.${extension}`;
}

/**
 * The domains of Send to Kindle addresses. Amazon's help ("Send to Kindle by E-mail") names
 * `@kindle.com`; Amazon gave every device a second address at `@free.kindle.com` (delivered over
 * Wi-Fi only, so never charged), which older set-ups and Amazon's older help pages still use, and
 * which reaches the same library. Both are accepted; `@kindle.cn` (Amazon China, whose Kindle store
 * closed) and look-alikes are not.
 */
export const KINDLE_DOMAINS: readonly string[] = ["kindle.com", "free.kindle.com"];

/** Checks a Kindle address; returns an error text naming what is wrong and what is allowed, or undefined. */
export function kindleAddressProblem(address: string): string | undefined {
  const allowed = `a Send to Kindle address ends in ${KINDLE_DOMAINS.map((d) => `@${d}`).join(" or ")} (Amazon: Manage Your Content and Devices → Preferences → Personal Document Settings)`;
  if (address.trim() === "") return `The Kindle address is empty: ${allowed}.`;
  if (address !== address.trim() || /[\s,;<>"]/.test(address)) return `The Kindle address must be one bare address, without spaces, a name or a list: ${allowed}.`;
  const at = address.lastIndexOf("@");
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  if (at <= 0 || !/^[A-Za-z0-9._+-]+$/.test(local) || local.startsWith(".") || local.endsWith(".") || local.includes("..")) {
    return `The Kindle address ${JSON.stringify(address)} is not an e-mail address: ${allowed}.`;
  }
  if (!KINDLE_DOMAINS.includes(domain)) return `The Kindle address ${JSON.stringify(address)} is not at Amazon's Kindle domain: ${allowed}.`;
  return undefined;
}

/** The SMTP server a URL names, with the credentials decoded; {@link smtpUrlProblem} first. */
export interface SmtpServer {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (smtps://, port 465); otherwise STARTTLS, which is then required. */
  readonly implicitTls: boolean;
  readonly user: string;
  readonly password: string;
}

const SMTP_URL_SHAPE =
  "smtps://user:password@host:465 (TLS) or smtp://user:password@host:587 (STARTTLS), the user and password percent-encoded (you%40gmail.com; / ? # : % in a password as %2F %3F %23 %3A %25)";

/**
 * Checks the SMTP URL: smtp:// or smtps://, a user and a password, and not port 25: AWS blocks
 * outbound TCP port 25 from Lambda functions as an anti-spam measure (AWS's Lambda documentation;
 * mail submission on 465 and 587 is not blocked). Never echoes the URL or the password: the text names the
 * part that is wrong.
 */
export function smtpUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `The SMTP URL is not a URL: write it as ${SMTP_URL_SHAPE}.`;
  }
  if (parsed.protocol !== "smtp:" && parsed.protocol !== "smtps:") {
    return `The SMTP URL starts with ${parsed.protocol}// : write it as ${SMTP_URL_SHAPE}.`;
  }
  // A `/`, `?` or `#` left unencoded in the password ends the authority early: what follows, up to
  // the real `@host`, lands in the path, query or fragment.
  if (/@/.test(`${parsed.pathname}${parsed.search}${parsed.hash}`)) {
    return `The SMTP URL's password (or user name) holds a / ? or # that is not percent-encoded, so the URL names the wrong server: write it as ${SMTP_URL_SHAPE}.`;
  }
  if (parsed.hostname === "") return `The SMTP URL names no server: write it as ${SMTP_URL_SHAPE}.`;
  if (parsed.username === "") return `The SMTP URL has no user name: write it as ${SMTP_URL_SHAPE}.`;
  if (parsed.password === "") return `The SMTP URL has no password (for Gmail, an app password): write it as ${SMTP_URL_SHAPE}.`;
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    return "The SMTP URL's user name or password has a broken percent-encoding (a % not followed by two hex digits): encode % as %25.";
  }
  const port = smtpPort(parsed);
  if (port === 0) return `The SMTP URL's port is 0: write it as ${SMTP_URL_SHAPE}.`;
  if (port === 25) {
    return "The SMTP URL uses port 25, which AWS blocks for mail sent from Lambda: use port 465 (smtps://) or 587 (smtp://, STARTTLS).";
  }
  if (parsed.protocol === "smtps:" && port === 587) return "The SMTP URL uses smtps:// with port 587, which speaks STARTTLS: use smtp://…:587, or smtps://…:465.";
  if (parsed.protocol === "smtp:" && port === 465) return "The SMTP URL uses smtp:// with port 465, which is TLS from the start: use smtps://…:465, or smtp://…:587.";
  return undefined;
}

function smtpPort(parsed: URL): number {
  // RFC 8314 §7.3 (submissions, TLS from the start) and RFC 6409 §3.1 (submission).
  return parsed.port === "" ? (parsed.protocol === "smtps:" ? 465 : 587) : Number(parsed.port);
}

/** The server an SMTP URL names. Throws (naming the problem, never the password) when {@link smtpUrlProblem} finds one. */
export function parseSmtpUrl(url: string): SmtpServer {
  const problem = smtpUrlProblem(url);
  if (problem !== undefined) throw new Error(problem);
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: smtpPort(parsed),
    implicitTls: parsed.protocol === "smtps:",
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
}
