// The page's pure logic: what it reads from a link or a file's first bytes, and every sentence it
// builds from the service's answers. No DOM and no storage here (app.ts does those), so the root
// tsconfig (no DOM lib) checks this file too, and test/page/helpers.test.ts runs it in Node.

/** A JSON answer's body, as far as the page reads it (docs/api.md). */
export interface ServiceBody {
  readonly status?: string;
  readonly error_type?: string;
  readonly error?: string;
  readonly request_id?: string;
  /** AcsmExpired: when the ACSM stopped working. */
  readonly expired_at?: string;
  /** BadRequest for a file that is not an ACSM: what it is instead (otherFileKind's names). */
  readonly detected?: string;
  readonly xml_error?: string;
  readonly unreachable_host?: string;
  readonly adept_error?: string;
  readonly loan_id?: string;
  /** AWS's own error shape (a Function URL's 403, a throttle). */
  readonly Message?: string;
  readonly output_files?: readonly OutputFile[];
  readonly loan?: Loan | null;
  readonly loans?: unknown;
  /** Health: whether Send to Kindle is set up. */
  readonly send_to_kindle?: boolean;
  /** A Send to Kindle answer's mail. */
  readonly kindle?: { readonly to?: string; readonly attachment_name?: string };
}

/** An answer from the service: its HTTP status and its JSON body ({} when it had none). */
export interface Answer {
  readonly status: number;
  readonly body: ServiceBody;
  /** The name of the file that was sent, when one was. */
  filename?: string;
}

export interface OutputFile {
  readonly filename: string;
  /** The book's key (every conversion's answer has one; the page's older tests' files do not). */
  readonly s3_key?: string;
  readonly download_url: string;
  readonly size_bytes: number;
  readonly expires_at: string;
}

/** A library loan, from a conversion's answer or GET /loans. */
export interface Loan {
  readonly id: string;
  readonly title?: string | null;
  readonly expires_at?: string | null;
  readonly expired?: boolean;
  readonly returnable?: boolean;
  readonly warning?: string;
  /** Set instead of the rest when the stored loan token cannot be read. */
  readonly error?: string;
  readonly stored_at?: string;
}

/** A conversion this browser remembers (localStorage), until its link expires. */
export interface Recent {
  readonly filename: string;
  readonly url: string;
  readonly size_bytes: number;
  readonly expires_at: string;
  /** The book's key in the output bucket: what "Send to Kindle" names (POST /kindle). */
  readonly s3_key?: string;
}

/** What "Send to Kindle" says when it is done: sent (never "delivered": Amazon sends no receipt), or why not. */
export function kindleText(a: Answer): string {
  const k = a.body.kindle;
  if (a.status === 200 && k) {
    return "Sent to " + k.to + " as " + quote(String(k.attachment_name)) + ". Amazon sends no receipt: the book should appear on your Kindle within a few minutes. If it does not, look in the sender\u2019s inbox for Amazon\u2019s failure notice.";
  }
  const rid = a.body.request_id ? " (request id " + a.body.request_id + ")" : "";
  return "Not sent to the Kindle: " + String(a.body.error || "the service answered HTTP " + a.status + ".").replace(/ The book itself is converted: .*$/, "") + rid;
}

/** The most recent conversions kept. */
export const RECENT_MAX = 10;

/** The largest file taken for an ACSM (a real one is a few KB). */
export const ACSM_MAX_BYTES = 262144;

/** The token in a fragment (`#token=…`, possibly among other `&`-separated fields), or "". */
export function tokenFromFragment(hash: string | null | undefined): string {
  const m = /(?:^#|&)token=([^&]*)/.exec(hash || "");
  if (!m) return "";
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return "";
  }
}

/** The token in a pasted access link (`https://…/#token=…`), or "". */
export function tokenFromLink(text: string): string {
  const i = text.indexOf("#");
  return i < 0 ? "" : tokenFromFragment(text.slice(i));
}

/** Whether an address the user pasted is one the service can fetch an ACSM from. */
export function isHttpsUrl(url: string): boolean {
  return /^https:\/\//i.test(url);
}

export function formatBytes(n: number): string {
  if (n < 1000) return n + " bytes";
  if (n < 1e6) return Math.round(n / 1000) + " KB";
  return (n / 1e6).toFixed(1) + " MB";
}

// The page passes neither locale nor time zone (the browser's own); the tests pass both.
// A value that is no date is shown as it came.

export function formatDate(iso: string | undefined, locales?: Intl.LocalesArgument, timeZone?: string): string {
  const d = new Date(iso as string);
  if (isNaN(d.getTime())) return String(iso);
  return d.toLocaleDateString(locales, { year: "numeric", month: "long", day: "numeric", timeZone });
}

export function formatTime(iso: string | undefined, locales?: Intl.LocalesArgument, timeZone?: string): string {
  const d = new Date(iso as string);
  return isNaN(d.getTime()) ? String(iso) : d.toLocaleString(locales, { dateStyle: "medium", timeStyle: "short", timeZone });
}

/** A title in typographic quotes. */
export function quote(t: string): string {
  return "\u201c" + t + "\u201d";
}

/** The service's messages are ASCII ("Adobe's"); the page's own words use typographic apostrophes. */
export function typographic(text: unknown): string {
  return String(text).replace(/(\w)'(\w)/g, "$1\u2019$2");
}

/** The text of a string of bytes, one character per byte (enough to look for signatures). */
export function latin1(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, Array.from(bytes));
}

// Built, not written "PK\u0003\u0004": esbuild would put the two control characters in the page raw.
const ZIP_SIGNATURE = "PK" + String.fromCharCode(3, 4);

export type OtherFileKind = "PDF" | "EPUB" | "zip" | "HTML";

/**
 * What a file that is not an ACSM is, from its first bytes: the signatures the service checks
 * (lambda/src/acsm.ts, otherFileKind): %PDF-, a zip (an EPUB's first entry is its mimetype), HTML.
 */
export function otherFileKind(start: string): OtherFileKind | "" {
  const t = start.replace(/^\uFEFF/, "").replace(/^\s+/, "");
  if (t.indexOf("%PDF-") === 0) return "PDF";
  if (t.indexOf(ZIP_SIGNATURE) === 0) return t.slice(0, 256).indexOf("mimetypeapplication/epub+zip") >= 0 ? "EPUB" : "zip";
  const body = t.replace(/^<\?xml[^>]*\?>\s*/i, "");
  if (/^<!doctype\s+html[\s>]/i.test(body) || /^<html[\s>]/i.test(body)) return "HTML";
  return "";
}

/** What each kind of file is, in words. */
export const OTHER_FILE: Readonly<Record<string, string>> = {
  PDF: "a PDF",
  EPUB: "an EPUB book",
  zip: "a zip archive",
  HTML: "a web page (the download may have saved the shop\u2019s page instead of the file)",
};

export function notAnAcsm(name: string | undefined, kind: string): string {
  return (name ? quote(name) + " is " : "This is ") + OTHER_FILE[kind] + ", not an ACSM file. Choose the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.";
}

/** Why a file is too big to be an ACSM, or "" when it is not. */
export function tooBigForAcsm(name: string, size: number): string {
  return size > ACSM_MAX_BYTES ? quote(name) + " is " + formatBytes(size) + ": an .acsm file is a few KB. Choose the .acsm file the shop or library gave you." : "";
}

export function unreadableFile(name: string): string {
  return "Could not read " + quote(name) + ". Choose it again, or another file.";
}

/** Plain words for the service's error answers (docs/api.md, "Errors"). */
export function explain(a: Answer): string {
  const b = a.body, type = b.error_type;
  if (type === "AcsmExpired") {
    return "This ACSM expired on " + formatDate(b.expired_at) + " (" + b.expired_at + "). An ACSM works only for a limited time: download a fresh one from the shop or library, then choose that one.";
  }
  if (type === "DeviceLimitReached") {
    return "The shop or library refused: too many devices have already been used with this book or account. Retrying will not help. Ask the library (or shop) to reset your device count, or to issue the loan again, then download a new ACSM.";
  }
  if (type === "BadRequest" && b.detected !== undefined && OTHER_FILE[b.detected]) return notAnAcsm(a.filename, b.detected);
  if (type === "InvalidAcsmUrl") return (b.error || "That address could not be used.") + " Download the .acsm file yourself and choose the file instead.";
  // The XML parser's words ("3:8: text data outside of root node") help no one choosing a file.
  if (type === "BadRequest" && b.xml_error) return "This file is not an ACSM the service can read: it is damaged, or another kind of file. Choose the .acsm file the shop or library gave you, or download it again.";
  if (type === "BadRequest" || type === "PayloadTooLarge") return (b.error || "") + " Check that you chose the .acsm file the shop or library gave you.";
  // A host the service cannot reach: its message names it and says what to do.
  if (type === "UpstreamError" && b.unreachable_host) return b.error || "";
  if (type === "UpstreamError") return (b.error || "") + " The shop\u2019s or Adobe\u2019s server failed; try again later.";
  if (b.error) return b.error;
  if (b.Message) return "The service failed (" + b.Message + "). Try again in a moment.";
  return "The service answered HTTP " + a.status + ". Try again in a moment.";
}

/** A failed request's words on the failure card: the explanation and the request id, if any. */
export function failureText(a: Answer): string {
  return explain(a) + (a.body.request_id ? " (request id " + a.body.request_id + ")" : "");
}

/**
 * Whether sending the same request again can succeed: not for the request's own faults (4xx: a
 * bad or expired ACSM, a device limit, a refused type) nor for a deployment that lacks its tools or
 * settings; yes for a failed or unreachable server, a timeout, a throttled or lost connection.
 */
export function retryable(a: Answer): boolean {
  const type = a.body.error_type;
  if (type === "ConverterMissing" || type === "Misconfigured") return false;
  return a.status >= 500 || a.status === 429 || a.status === 0;
}

/**
 * The failure card's buttons. "Try again" only where a retry can help (it then runs again); "Choose
 * another file" after a conversion no retry can fix; neither when only the service's owner can fix it.
 */
export function failureButtons(canRetry: boolean, chooseAnother: boolean): { tryAgain: boolean; chooseAnother: boolean } {
  return { tryAgain: canRetry, chooseAnother: !canRetry && chooseAnother };
}

/** The working card's line, `elapsedMs` after the request was sent. */
export function progressText(elapsedMs: number): string {
  return "Converting\u2026 " + Math.floor(elapsedMs / 1000) + " s";
}

/** The result card's heading: the book's file name without its extension. */
export function bookTitle(filename: string): string {
  return filename.replace(/\.(epub|pdf)$/i, "");
}

/** The result card's line under the heading: the format and the size. */
export function bookMeta(file: OutputFile): string {
  return (/\.pdf$/i.test(file.filename) ? "PDF" : "EPUB") + ", " + formatBytes(file.size_bytes);
}

export function linkExpiry(file: OutputFile): string {
  return "The link works until " + formatTime(file.expires_at) + ".";
}

/** The result card's words about the library loan the conversion made. */
export function loanText(l: Loan): string {
  return "This is a library loan" + (l.expires_at ? " ending on " + formatTime(l.expires_at) : "") + ". " +
    (l.returnable ? "You can return it early from \u201cMy loans\u201d below." : (l.warning || "It cannot be returned early; it ends on its own."));
}

/** A loan's line under its title in "My loans": when it ends or ended. */
export function loanStatus(l: Loan): string {
  return l.expired ? "ended" + (l.expires_at ? " " + formatTime(l.expires_at) : "") : l.expires_at ? "ends " + formatTime(l.expires_at) : "end date unknown";
}

/** Whether "My loans" stays hidden: nothing to show yet, or a card that asks for access is shown. */
export function loansHidden(loansShown: boolean, view: string): boolean {
  return !loansShown || view === "" || view === "need-token" || view === "iam";
}

/** Plain words for a return's error answers (docs/api.md, "Library loans"); `t` is the quoted title. */
export function explainReturn(a: Answer, t: string): string {
  const b = a.body, type = b.error_type;
  const rid = a.status >= 500 && b.request_id ? " (request id " + b.request_id + ")" : "";
  if (type === "LoanReturnRefused") return "The library refused to take back " + t + (b.adept_error ? ": it answered " + b.adept_error : "") + ". It may already be returned or ended. It stays in this list; once the library no longer shows it, remove it with npx knock return --forget " + b.loan_id + ".";
  if (type === "LoanExpired") return t + " has already ended: the library has taken it back, there is nothing to return.";
  if (type === "NoSuchLoan") return t + " is no longer stored: it was already returned or removed.";
  if (type === "ReturnInProgress") return t + " is being returned by another request right now; look at this list again in a minute.";
  if (type === "InvalidLoanToken") return "The saved loan of " + t + " cannot be read, so it cannot be returned; it ends on its own.";
  if (type === "UpstreamError" && b.unreachable_host) return b.error + " " + t + " was not returned." + rid;
  if (type === "UpstreamError") return "The library\u2019s server failed or could not be reached; " + t + " was not returned. Try again later." + rid;
  if (type === "ConversionTimeout") return "The library\u2019s server took too long to answer; " + t + " was not returned. Try again later." + rid;
  return explain(a) + rid;
}

/** The conversions in `saved` (what localStorage holds, or null) whose links still work at `now`. */
export function liveRecent(saved: string | null, now: number): Recent[] {
  let list: unknown;
  try {
    list = JSON.parse(saved || "[]");
  } catch {
    list = [];
  }
  if (!Array.isArray(list)) list = [];
  return (list as (Recent | null)[]).filter((r) => r && r.url && Date.parse(r.expires_at) > now) as Recent[];
}

/** `list` with `entry` first and no other entry for its link. */
export function withRecent(list: readonly Recent[], entry: Recent): Recent[] {
  return [entry, ...list.filter((r) => r.url !== entry.url)];
}

/** What is saved of the list: the newest RECENT_MAX. */
export function recentToSave(list: readonly Recent[]): string {
  return JSON.stringify(list.slice(0, RECENT_MAX));
}

/** A remembered conversion's words after its link: its size and until when the link works. */
export function recentDetails(r: Recent): string {
  return " \u2014 " + formatBytes(r.size_bytes) + ", until " + formatTime(r.expires_at);
}
