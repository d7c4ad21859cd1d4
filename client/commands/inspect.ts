import { open } from "node:fs/promises";
import { Command } from "commander";
import { describeAcsm, hasExpired, MAX_BODY_BYTES, otherFileKind, ServiceError, type AcsmDescription } from "../../lambda/src/public";
import { CliError } from "../lib/failures";

/** Bytes read to tell a book, archive or web page from an ACSM (what the service looks at). */
const SNIFF_BYTES = 512;
/** Warn when the token expires this soon: a conversion started later may not finish in time. */
const SOON_MS = 3_600_000;
/**
 * The clock check. An ACSM carries no time it was issued at (only `<expiration>` and an opaque
 * `<transaction>`), so the local clock cannot be compared with the shop's. What can be said honestly:
 * a clock before {@link CLOCK_FLOOR} is certainly wrong (this version of knock was written after it;
 * a machine whose clock battery died reads 1970 or 2000), and an expiry more than
 * {@link FAR_EXPIRY_DAYS} days ahead is implausible for a fulfilment token, which shops issue for a
 * download window of minutes to days — so either the clock is far behind or the token is unusual.
 * A clock that is ahead cannot be told apart from an old ACSM: it shows as expired.
 */
const CLOCK_FLOOR = Date.UTC(2025, 0, 1);
const FAR_EXPIRY_DAYS = 366;
const DAY_MS = 86_400_000;

/** What the token says it is: `fulfillmentType` on its root (`buy` or `loan`). */
export type AcsmKind = "purchase" | "loan" | "unknown";

/** A warning `knock inspect` gives; only `expired` makes it exit 1. */
export interface InspectWarning {
  readonly code: "expired" | "expires-soon" | "clock";
  readonly message: string;
}

/** What `knock inspect --json` prints: one object, these fields always present (null when the ACSM does not say). */
export interface InspectResult {
  readonly file: string;
  readonly title: string | null;
  readonly author: string | null;
  readonly format: "EPUB" | "PDF" | "unknown";
  readonly media_type: string | null;
  readonly distributor: string | null;
  readonly resource: string | null;
  readonly operator_host: string;
  readonly operator_url: string;
  readonly kind: AcsmKind;
  readonly fulfillment_type: string | null;
  readonly expires_at: string | null;
  readonly expires_in_seconds: number | null;
  readonly expired: boolean;
  readonly checked_at: string;
  readonly warnings: readonly InspectWarning[];
}

const FORMATS: Readonly<Record<string, "EPUB" | "PDF">> = { "application/epub+zip": "EPUB", "application/pdf": "PDF" };

/**
 * Loan or purchase, as the token declares it. libgourou itself learns that a book is lent only from
 * the distributor's fulfilment answer (the `<loanToken>` acsmdownloader then writes, which is what
 * the service keeps); the ACSM's `fulfillmentType="loan"` or `"buy"` is the distributor's word for
 * it beforehand. Any other value, or none, is "unknown until fulfilled" rather than a guess.
 */
function kindOf(fulfillmentType: string | undefined): AcsmKind {
  if (fulfillmentType === "loan") return "loan";
  if (fulfillmentType === "buy") return "purchase";
  return "unknown";
}

/** "3 days", "42 minutes": the largest whole unit, rounded down so the time left is never overstated. */
function span(ms: number): string {
  const units: [number, string][] = [
    [365 * DAY_MS, "year"],
    [DAY_MS, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1_000, "second"],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1 && (size === 1_000 || ms >= 2 * size || name === "year")) return `${n} ${name}${n === 1 ? "" : "s"}`;
  }
  return "0 seconds";
}

/** "in 3 days" or "2 hours ago". */
export function relative(ms: number): string {
  return ms >= 0 ? `in ${span(ms)}` : `${span(-ms)} ago`;
}

/** The facts and warnings for one token at `now`. */
export function inspectAcsm(file: string, info: AcsmDescription, now: Date): InspectResult {
  const warnings: InspectWarning[] = [];
  const left = info.expiresAt === undefined ? undefined : info.expiresAt - now.getTime();
  const expired = info.expiresAt !== undefined && hasExpired(info.expiresAt, now);
  const expiresAt = info.expiresAt === undefined ? null : new Date(info.expiresAt).toISOString();
  if (expired && left !== undefined) {
    warnings.push({ code: "expired", message: `this ACSM expired at ${expiresAt} (${relative(left)}): download a fresh ACSM from the shop or library.` });
  } else if (left !== undefined && left <= SOON_MS) {
    warnings.push({ code: "expires-soon", message: `this ACSM expires ${relative(left)}: convert it now, or download a fresh one.` });
  }
  if (now.getTime() < CLOCK_FLOOR) {
    warnings.push({ code: "clock", message: `this machine's clock reads ${now.toISOString()}, which cannot be right: the expiry above is judged by it.` });
  } else if (left !== undefined && left > FAR_EXPIRY_DAYS * DAY_MS) {
    warnings.push({
      code: "clock",
      message: `the ACSM expires ${relative(left)}, far later than fulfilment tokens last: check this machine's clock (the expiry is judged by it).`,
    });
  }
  return {
    file,
    title: info.title ?? null,
    author: info.creator ?? null,
    format: (info.format && FORMATS[info.format]) || "unknown",
    media_type: info.format ?? null,
    distributor: info.distributor ?? null,
    resource: info.resource ?? null,
    operator_host: info.operatorHost,
    operator_url: info.operatorURL,
    kind: kindOf(info.fulfillmentType),
    fulfillment_type: info.fulfillmentType ?? null,
    expires_at: expiresAt,
    expires_in_seconds: left === undefined ? null : Math.trunc(left / 1000),
    expired,
    checked_at: now.toISOString(),
    warnings,
  };
}

/** The human lines: one fact a line, labels aligned. */
export function formatInspect(r: InspectResult): string {
  const kind = r.kind === "unknown" ? `unknown until fulfilled${r.fulfillment_type ? ` (fulfillmentType="${r.fulfillment_type}")` : ""}` : r.kind;
  const rows: [string, string][] = [
    ["Title", r.title ?? "(none given)"],
    ["Author", r.author ?? "(none given)"],
    ["Format", r.media_type === null ? "unknown (no <dc:format>)" : r.format === "unknown" ? `unknown (${r.media_type})` : r.format],
    ["Distributor", r.distributor ?? "(none given)"],
    ["Operator host", r.operator_host],
    ["Kind", kind],
    ["Expires", r.expires_at === null || r.expires_in_seconds === null ? "not stated (no <expiration>)" : `${r.expires_at} (${r.expired ? "expired " : ""}${relative(r.expires_in_seconds * 1000)})`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}\n`).join("");
}

/** The file's text, or a failure naming the file and the problem. */
async function readAcsm(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    const handle = await open(file, "r");
    try {
      const { size } = await handle.stat();
      // A book is megabytes: read only its first bytes, enough to say what it is.
      const length = size > MAX_BODY_BYTES ? SNIFF_BYTES : size;
      bytes = Buffer.alloc(length);
      await handle.read(bytes, 0, length, 0);
      if (size > MAX_BODY_BYTES) {
        // A book, an archive or a page: describeAcsm throws the service's NotAnAcsm for it.
        if (otherFileKind(bytes.toString("latin1")) !== undefined) describeAcsm(bytes.toString("latin1"));
        throw new CliError("input", `${file}: is ${size} bytes; an ACSM file is a few KB, and the service takes at most ${MAX_BODY_BYTES}.`);
      }
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof CliError || err instanceof ServiceError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a folder, not an .acsm file" : code === "EACCES" ? "not readable" : String(code ?? err);
    throw new CliError("input", `${file}: ${why}.`, {}, { cause: err });
  }
  return bytes.toString("utf8");
}

/** The service's refusal of a token, as a failure naming the file: its first sentence, then what to do. */
function refusal(file: string, err: ServiceError): CliError {
  const message = err.message.charAt(0).toLowerCase() + err.message.slice(1);
  const split = typeof err.details.detected === "string" ? message.indexOf(". ") : -1;
  const text = split < 0 ? message : `${message.slice(0, split + 1)}\n  ${message.slice(split + 2)}`;
  return new CliError("input", `${file}: ${text}`, { errorType: err.errorType }, { cause: err });
}

/** `knock inspect`: what an ACSM says, read on this machine with no request. */
export function inspectCommand(): Command {
  return new Command("inspect")
    .description("Show what an ACSM file says (title, format, distributor, loan or purchase, expiry) without sending it anywhere")
    .argument("<acsm>", "the ACSM file")
    .option("--json", "print one JSON object on stdout")
    .addHelpText("after", "\nExample:\n  $ npx knock inspect ~/Downloads/URLLink.acsm\n")
    .action(async (file: string, flags: { json?: boolean }) => {
      let info: AcsmDescription;
      try {
        info = describeAcsm(await readAcsm(file));
      } catch (err) {
        throw err instanceof ServiceError ? refusal(file, err) : err;
      }
      const result = inspectAcsm(file, info, new Date());
      process.stdout.write(flags.json ? JSON.stringify(result) + "\n" : formatInspect(result));
      const expired = result.warnings.find((w) => w.code === "expired");
      for (const w of result.warnings) if (w !== expired) process.stderr.write(`knock: warning: ${w.message}\n`);
      // The same exit status as `knock convert` gives an expired ACSM: the file cannot be converted.
      if (expired) throw new CliError("input", expired.message);
    });
}
