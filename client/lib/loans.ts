import type { LoanEntry as ServiceLoanEntry, LoanListAnswer } from "../../lambda/src/public";
import type { Connection } from "./connection";
import { CliError } from "./failures";
import { call } from "./http";
import { expectOk } from "./service-answers";

/** Every field that some form of the union `T` has, each optional, typed as there. */
type AnyFormOf<T> = { readonly [K in T extends unknown ? keyof T : never]?: T extends { readonly [P in K]?: infer V } ? V : never };

/**
 * One entry of the service's `GET /loans` answer (the contract's `LoanEntry`: a readable loan, or a
 * stored token that cannot be read, with `error`), as the client reads it: its runtime check (in
 * {@link fetchLoans}) holds it to a string `id`, so every other field is read as possibly absent.
 */
export type LoanEntry = Pick<ServiceLoanEntry, "id"> & AnyFormOf<ServiceLoanEntry>;

/** The service's `GET /loans` answer (the contract's `LoanListAnswer`), with its entries as the client reads them. */
export type LoanList = Omit<LoanListAnswer, "loans"> & { readonly loans: readonly LoanEntry[] };

/** The service URL with `path` in place of the Function URL's own path. */
export function serviceUrl(conn: Connection, path: string): URL {
  return new URL(path, conn.address.url);
}

/** Sends one JSON request to the service and returns its checked JSON answer. */
export async function callService(conn: Connection, method: string, path: string): Promise<Record<string, unknown>> {
  const answer = await call({ method, url: serviceUrl(conn, path), headers: { accept: "application/json" } }, conn.sign, {
    connectTo: conn.connectTo,
    // A return waits for the library's server; a list reads a few small objects.
    idleTimeoutMs: 120_000,
  });
  return expectOk(answer, await conn.functionArn());
}

/** Lists the stored loans; fails clearly when the service predates loans (it then answers health to any GET). */
export async function fetchLoans(conn: Connection): Promise<LoanList> {
  const body = await callService(conn, "GET", "/loans");
  if (!Array.isArray(body.loans)) {
    throw new CliError("service", "The service's answer has no loans list: it predates library loans. Update it (`pulumi up`) and retry.");
  }
  const loans = (body.loans as unknown[]).filter(
    (l): l is LoanEntry => typeof l === "object" && l !== null && typeof (l as { id?: unknown }).id === "string",
  );
  return { loans, count: loans.length };
}

/** A loan's status word in the table. */
export function loanStatus(loan: LoanEntry): string {
  if (loan.error !== undefined) return "unreadable";
  return loan.expired ? "expired" : "on loan";
}

/** `2026-12-10 10:00 UTC`, or `unknown`. */
export function formatExpiry(iso: string | null | undefined): string {
  if (!iso || Number.isNaN(Date.parse(iso))) return "unknown";
  return new Date(iso).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
}

/** Cuts `text` to `width` characters, marking the cut with an ellipsis. */
function fit(text: string, width: number): string {
  const chars = Array.from(text);
  return chars.length <= width ? text : chars.slice(0, width - 1).join("").trimEnd() + "…";
}

function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - Array.from(text).length));
}

/** The loans as an aligned table with a header (ID, TITLE, EXPIRES, STATUS). */
export function loanTable(loans: readonly LoanEntry[], maxTitle = 40): string {
  const rows = loans.map((l) => [l.id, fit(l.title ?? "(unreadable token)", maxTitle), formatExpiry(l.expires_at), loanStatus(l)]);
  const all = [["ID", "TITLE", "EXPIRES", "STATUS"], ...rows];
  const widths = [0, 1, 2].map((i) => Math.max(...all.map((r) => Array.from(r[i]).length)));
  return all.map((r) => [pad(r[0], widths[0]), pad(r[1], widths[1]), pad(r[2], widths[2]), r[3]].join("  ")).join("\n") + "\n";
}

/**
 * The loans `query` names: the loan with that id, else every loan whose title contains it
 * (case-insensitive, Unicode-normalised, so `miserables` does not match but `misérables` does in either form).
 */
export function matchLoans(loans: readonly LoanEntry[], query: string): LoanEntry[] {
  const q = query.trim();
  const byId = loans.filter((l) => l.id === q.toLowerCase());
  if (byId.length > 0) return byId;
  const needle = q.normalize("NFC").toLocaleLowerCase();
  if (needle === "") return [];
  return loans.filter((l) => l.title !== undefined && l.title.normalize("NFC").toLocaleLowerCase().includes(needle));
}
