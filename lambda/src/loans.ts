import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { DEVICE_FILES } from "./device";
import {
  BadRequestError,
  InvalidLoanTokenError,
  LoanExpiredError,
  LoanNotFoundError,
  LoanReturnFailedError,
  LoanReturnInProgressError,
  LoanReturnRefusedError,
  ServiceError,
} from "./errors";
import { httpStatusOf } from "./adept-errors";
import { LibgourouError, mapLibgourouError, runLibgourou } from "./libgourou";
import { LOAN_ID_PATTERN, type ConversionLoan, type LoanEntry, type LoanForgetAnswer, type LoanListAnswer, type LoanReturnAnswer, type LoanSummary } from "./contract";
import type { LoanStore } from "./loan-store";
import type { Logger } from "./log";
import type { ToolRun } from "./run-tool";
import { collectElementText, XmlRefusal } from "./strict-xml";

/** What a loan token says (utils/acsmdownloader.cpp, serializeLoanToken). */
export interface LoanToken {
  /** The loan's own id (e.g. `urn:uuid:…`), which the library knows it by. */
  readonly id: string;
  /** The library's ADEPT server the return goes to. */
  readonly operatorURL: string;
  /** End of the loan as the server wrote it, e.g. `2026-12-10T10:00:00+00:00`. */
  readonly validity: string;
  /** The book's title. */
  readonly name: string;
}

/** Loan tokens are a few hundred bytes; anything this big is not one. */
const MAX_TOKEN_BYTES = 64 * 1024;

/**
 * How long a return marker may be held: no invocation runs longer than Lambda's 900 s limit (nor
 * `knock serve`'s, which takes the same limit), so an older marker was left by a stopped one.
 */
export const RETURN_MARKER_STALE_MS = 16 * 60 * 1000;

/**
 * Parses a loan token with the parser the handler uses for ACSM files (saxes: conforming, one
 * linear pass), refusing DOCTYPE and entity declarations. Like adept_loan_mgt (utils/adept_loan_mgt.cpp,
 * loadLoanedBooks: XPath `//id`, `//operatorURL`, `//validity`, `//name` on a pugixml document, which
 * is not namespace-aware) it takes the first element of each name in document order; the root must
 * be the `<loanToken>` acsmdownloader writes. Throws with the reason when it is not a usable token.
 */
export function parseLoanToken(xml: string): LoanToken {
  if (Buffer.byteLength(xml) > MAX_TOKEN_BYTES) throw new Error(`larger than ${MAX_TOKEN_BYTES} bytes`);
  const wanted = ["id", "operatorURL", "validity", "name"] as const;
  type Field = (typeof wanted)[number];
  let found: Map<Field, string>;
  try {
    // The tool writes it with pugixml, without namespaces: names are read as written.
    found = collectElementText<Field>(xml, {
      namespaces: false,
      maxDepth: 8,
      tooDeep: "it nests elements too deep",
      rootProblem: (tag) => (tag.name === "loanToken" ? undefined : `its root is <${tag.name}>, not <loanToken>`),
      field: (tag) => ((wanted as readonly string[]).includes(tag.name) ? (tag.name as Field) : undefined),
    });
  } catch (err) {
    if (err instanceof XmlRefusal) throw new Error(err.message);
    throw err;
  }
  for (const field of wanted) if (!found.has(field)) throw new Error(`no <${field}> element`);
  const operatorURL = found.get("operatorURL")!;
  let url: URL;
  try {
    url = new URL(operatorURL);
  } catch {
    throw new Error("its <operatorURL> is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(`its <operatorURL> is not http(s) but ${url.protocol}`);
  return { id: found.get("id")!, operatorURL, validity: found.get("validity")!, name: found.get("name")! };
}

/** The API's view of a token at `now`. */
export function summarize(id: string, token: LoanToken, now: Date): LoanSummary {
  const at = Date.parse(token.validity);
  return {
    id,
    title: token.name,
    expires_at: Number.isNaN(at) ? null : new Date(at).toISOString(),
    expired: !Number.isNaN(at) && at <= now.getTime(),
    operator: new URL(token.operatorURL).host,
  };
}

/**
 * The loan token acsmdownloader wrote, from its output: the last `Loan token serialized into <path>`
 * line (utils/acsmdownloader.cpp prints it after `Created <file>`, whose name comes from the book's
 * title and could itself contain such a line), accepted only where the tool writes tokens:
 * `<device dir>/loans/<16 hex>.xml`.
 */
export function loanTokenPath(output: string, deviceDir: string): string | undefined {
  const matches = [...output.matchAll(/^Loan token serialized into (.+)$/gm)];
  const path = matches.at(-1)?.[1];
  if (path === undefined) return undefined;
  const full = resolve(path);
  const ok = dirname(full) === resolve(deviceDir, "loans") && LOAN_ID_PATTERN.test(basename(full, ".xml")) && full.endsWith(".xml");
  return ok ? full : undefined;
}

/** Refuses anything but a libgourou loan id before it becomes a file name or an object key. */
export function checkLoanId(id: string): string {
  if (!LOAN_ID_PATTERN.test(id)) {
    throw new BadRequestError(`A loan id is 16 lowercase hexadecimal digits, as GET /loans lists them; got "${id.slice(0, 40)}".`);
  }
  return id;
}

/**
 * Runs `adept_loan_mgt` and turns its failures into the answers a return gives: an ADEPT error from
 * the library's server (0x1003) or its HTTP 403 is the library refusing; the rest as for the other tools.
 */
export async function runLoanTool(toolsDir: string, id: string, args: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<ToolRun> {
  try {
    return await runLibgourou(toolsDir, "adept_loan_mgt", args, timeoutMs, env);
  } catch (err) {
    if (err instanceof LibgourouError && err.exceptionCode === "0x1003") throw new LoanReturnRefusedError(id, err.toolMessage);
    // The library's HTTP 403 refuses this return as an ADEPT error would; the conversion's
    // DistributorRefused speaks of fulfilling an ACSM, which a return does not do.
    if (err instanceof LibgourouError && err.exceptionCode === "0x5011" && httpStatusOf(err.toolMessage) === 403) {
      throw new LoanReturnRefusedError(id, err.toolMessage, 403);
    }
    if (err instanceof LibgourouError) throw mapLibgourouError(err);
    throw err;
  }
}

/** What a return needs from the invocation. */
export interface ReturnContext {
  readonly log: Logger;
  readonly now: Date;
  readonly requestId: string;
  /** Empty per-invocation directory, removed by the caller. */
  readonly workDir: string;
  /** Directory of the stored device, or undefined when none is stored. */
  readonly deviceDir: () => Promise<string | undefined>;
  /** Runs adept_loan_mgt with these arguments (time limit, minimal environment, egress proxy). */
  readonly run: (args: readonly string[]) => Promise<ToolRun>;
}

/** Keeps, lists, returns and forgets the loans the service fulfilled. */
export class Loans {
  constructor(private readonly store: LoanStore) {}

  /**
   * Stores the token acsmdownloader wrote at `tokenPath` and removes it from the device cache (the
   * store is its home; the cache is shared by later requests). A failure to store does not fail the
   * conversion — the book is already fulfilled — but the answer says the loan cannot be returned.
   */
  async keep(tokenPath: string, log: Logger): Promise<ConversionLoan> {
    const id = basename(tokenPath, ".xml");
    try {
      const xml = await readFile(tokenPath, "utf8").catch((err: NodeJS.ErrnoException) => {
        log.error("could not read the loan token acsmdownloader reported", { loan_id: id, error: err.code ?? err.message });
        return undefined;
      });
      if (xml === undefined) {
        return { id, title: null, expires_at: null, returnable: false, warning: "The loan could not be recorded, so the service cannot return it early." };
      }
      let token: LoanToken | undefined;
      try {
        token = parseLoanToken(xml);
      } catch (err) {
        log.warn("loan token written by acsmdownloader is not valid", { loan_id: id, error: (err as Error).message });
      }
      const summary = token && summarize(id, token, new Date());
      try {
        await this.store.put(id, xml);
      } catch (err) {
        log.error("could not store the loan token", { loan_id: id, error: (err as Error).message });
        return {
          id,
          title: summary?.title ?? null,
          expires_at: summary?.expires_at ?? null,
          returnable: false,
          warning: "The loan could not be recorded, so the service cannot return it early; it ends on its own at expires_at.",
        };
      }
      log.info("loan token stored", { loan_id: id });
      return { id, title: summary?.title ?? null, expires_at: summary?.expires_at ?? null, returnable: true };
    } finally {
      await rm(tokenPath, { force: true });
    }
  }

  /** Every stored loan, newest first; a token that cannot be read is listed with an `error`. */
  async list(now: Date): Promise<LoanListAnswer> {
    const entries = (await this.store.list()).sort((a, b) => b.storedAt.getTime() - a.storedAt.getTime() || a.id.localeCompare(b.id));
    const loans: (LoanEntry | undefined)[] = new Array(entries.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < entries.length; i = next++) {
        const { id, storedAt } = entries[i];
        const stored = await this.store.get(id);
        if (stored === undefined) continue; // returned or forgotten since the listing
        try {
          const summary = summarize(id, parseLoanToken(stored.xml), now);
          loans[i] = { ...summary, stored_at: storedAt.toISOString(), returnable: !summary.expired };
        } catch (err) {
          loans[i] = { id, stored_at: storedAt.toISOString(), returnable: false, error: `The stored loan token is not valid (${(err as Error).message}).` };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, entries.length) }, worker));
    const present = loans.filter((l): l is LoanEntry => l !== undefined);
    return { loans: present, count: present.length };
  }

  /**
   * Returns a loan to the library with `adept_loan_mgt -r` and forgets it. A marker created only if
   * absent (If-None-Match: *) makes concurrent returns of one loan exclusive: the library hears
   * of it once; the other request answers 409, or 404 once the first has finished.
   */
  async return(id: string, ctx: ReturnContext): Promise<LoanReturnAnswer> {
    checkLoanId(id);
    if ((await this.store.get(id)) === undefined) throw new LoanNotFoundError(id);
    const release = await this.claim(id, ctx);
    try {
      // Read again under the marker: a return that finished in between has removed it.
      const stored = await this.store.get(id);
      if (stored === undefined) throw new LoanNotFoundError(id);
      let token: LoanToken;
      try {
        token = parseLoanToken(stored.xml);
      } catch (err) {
        throw new InvalidLoanTokenError(id, (err as Error).message);
      }
      const summary = summarize(id, token, ctx.now);
      if (summary.expired) throw new LoanExpiredError(id, summary.expires_at ?? token.validity);
      const deviceDir = await ctx.deviceDir();
      if (deviceDir === undefined) {
        throw new ServiceError(500, "DeviceUnavailable", "No Adobe device is stored, so no loan can be returned: the device that borrowed the book is gone.");
      }
      // A private copy of the device with only this token: adept_loan_mgt reads every token in
      // <dir>/loans, and the device cache is shared with concurrent requests.
      const adeptDir = join(ctx.workDir, "adept");
      await mkdir(join(adeptDir, "loans"), { recursive: true, mode: 0o700 });
      for (const name of DEVICE_FILES) await copyFile(join(deviceDir, name), join(adeptDir, name));
      const tokenFile = join(adeptDir, "loans", `${id}.xml`);
      await writeFile(tokenFile, stored.xml, { mode: 0o600 });
      ctx.log.info("returning loan", { loan_id: id, operator: summary.operator });
      const run = await ctx.run(["-D", adeptDir, "-r", id]);
      // adept_loan_mgt exits 0 when the id is unknown to it (utils/adept_loan_mgt.cpp, returnBook
      // prints "Error : Loan <id> doesn't exists" and returns): only its success line counts.
      if (!new RegExp(`^Loan ${id} successfully returned$`, "m").test(run.output)) {
        const said = run.output.split("\n").map((l) => l.trim()).filter(Boolean).slice(-2).join(" | ") || "no output";
        throw new LoanReturnFailedError(id, said);
      }
      if (await stat(tokenFile).then(() => true, () => false)) {
        ctx.log.warn("adept_loan_mgt confirmed the return but kept the token", { loan_id: id });
      }
      const outcome = await this.store.removeIfUnchanged(id, stored.etag);
      ctx.log.info("loan returned", { loan_id: id, stored_token: outcome });
      return { message: `Returned "${token.name}" to the library.`, returned: true, loan: summary };
    } finally {
      await release();
    }
  }

  /** Forgets a loan without telling the library (for loans that ended or were returned elsewhere). */
  async forget(id: string, now: Date): Promise<LoanForgetAnswer> {
    checkLoanId(id);
    const stored = await this.store.get(id);
    if (stored === undefined) throw new LoanNotFoundError(id);
    const marker = await this.store.readMarker(id);
    if (marker !== undefined && !isStale(marker.body, now)) throw new LoanReturnInProgressError(id);
    const outcome = await this.store.removeIfUnchanged(id, stored.etag);
    if (outcome === "absent") throw new LoanNotFoundError(id);
    if (outcome === "changed") throw new LoanReturnInProgressError(id);
    let loan: LoanForgetAnswer["loan"] = { id };
    try {
      loan = summarize(id, parseLoanToken(stored.xml), now);
    } catch {
      // A corrupt token is forgotten all the same; that is what forgetting is for.
    }
    return { message: "Loan forgotten; the library was not told (the loan ends on its own at expires_at).", forgotten: true, loan };
  }

  /** Takes the return marker, replacing one left by a stopped invocation; throws 409 when another return holds it. */
  private async claim(id: string, ctx: ReturnContext): Promise<() => Promise<void>> {
    const body = JSON.stringify({ started_at: ctx.now.toISOString(), request_id: ctx.requestId });
    for (let attempt = 0; attempt < 3; attempt++) {
      const etag = await this.store.createMarker(id, body);
      if (etag !== undefined) {
        return async () => {
          await this.store.removeMarker(id, etag).catch((err: unknown) => {
            ctx.log.error("could not remove the return marker", { loan_id: id, error: (err as Error).message });
          });
        };
      }
      const marker = await this.store.readMarker(id);
      if (marker === undefined) continue; // released in between
      if (!isStale(marker.body, ctx.now)) throw new LoanReturnInProgressError(id);
      ctx.log.warn("removing a stale return marker", { loan_id: id });
      await this.store.removeMarker(id, marker.etag);
    }
    throw new LoanReturnInProgressError(id);
  }
}

function isStale(markerBody: string, now: Date): boolean {
  let started = Number.NaN;
  try {
    started = Date.parse(String((JSON.parse(markerBody) as { started_at?: unknown }).started_at));
  } catch {
    // An unreadable marker counts as stale: no running return would have written it.
  }
  return Number.isNaN(started) || now.getTime() - started > RETURN_MARKER_STALE_MS;
}
