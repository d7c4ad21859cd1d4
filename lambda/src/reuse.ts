import { createHash } from "node:crypto";
import type { Logger } from "./log";
import type { ConvertedRecord, ReuseIndex } from "./output-store";
import { RETURN_MARKER_STALE_MS } from "./loans";
import { collectElementText, XmlRefusal } from "./strict-xml";

// The same ACSM twice gives the same book: while the book converted from it is still stored, a
// repeated request links it again instead of fulfilling the token a second time; two identical
// requests at once convert once, held apart by a claim object created with `If-None-Match: *`
// (S3's conditional-write rules, as the device and the loan returns use them).

const ADEPT_NS = "http://ns.adobe.com/adept";

/** Pause between two looks at a claim another request holds. */
const POLL_MS = 250;

/** Time kept back from waiting, for this request's own conversion should the other one vanish. */
const KEEP_FOR_CONVERTING_MS = 5_000;

/**
 * Shortest life a stored book must have left to be handed out again (the shortest download link the
 * settings allow, download_url_expiry_seconds' minimum); one closer to its expiry is converted anew.
 */
export const MIN_LINK_MS = 60_000;

/** Beyond the holder's own deadline, before its claim counts as left behind by a stopped invocation. */
const DEADLINE_GRACE_MS = 10_000;

/**
 * An ACSM's identity: the SHA-256 (hex) of `<operatorURL>\n<transaction>` — the fulfilment's own
 * name at its distributor, which the same order's ACSM downloaded again repeats — or, for a token
 * without a `<transaction>`, of the whole document. `xml` has passed validateAcsm, whose
 * `operatorURL` is given. Like libgourou (`//transaction` on a pugixml document) the first
 * `<transaction>` in document order counts.
 */
export function acsmIdentity(xml: string, operatorURL: string): string {
  let transaction: string | undefined;
  try {
    transaction = collectElementText<"transaction">(xml, {
      namespaces: true,
      maxDepth: 32,
      tooDeep: "too deep",
      rootProblem: () => undefined,
      field: (tag) => (tag.local === "transaction" && tag.uri === ADEPT_NS ? "transaction" : undefined),
    }).get("transaction");
  } catch (err) {
    if (!(err instanceof XmlRefusal)) throw err;
  }
  const hash = createHash("sha256");
  if (transaction) hash.update(`${operatorURL}\n${transaction}`);
  else hash.update(xml);
  return hash.digest("hex");
}

/** What {@link acquire} needs from the invocation. */
export interface ReuseContext {
  readonly log: Logger;
  readonly requestId: string;
  readonly now: () => Date;
  /** Milliseconds this invocation may still use. */
  readonly timeLeftMs: () => number;
  /** Whether a stored book may still be handed out (a loan may have ended or been returned). @default always */
  readonly usable?: (record: ConvertedRecord) => Promise<boolean>;
  /** Waits `ms` (a seam for tests; setTimeout by default). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** A book found in the index and still stored. */
export interface FoundBook {
  readonly kind: "stored";
  readonly record: ConvertedRecord;
  /** When the bucket's lifecycle will remove the book, when it will: no link to it may outlive that. */
  readonly expiresAt?: Date;
}

/** This request converts: it holds the claim (or could not get it in time) and must release it. */
export interface ToConvert {
  readonly kind: "convert";
  /** Records the book once kept (before the claim is released, so a waiter finds it). */
  record(record: ConvertedRecord): Promise<void>;
  /** Gives the claim up; never throws. */
  release(): Promise<void>;
}

/** Converting without holding the claim (it could not be had): the book is still recorded. */
export function withoutClaim(index: ReuseIndex, identity: string): ToConvert {
  return { kind: "convert", record: (record) => index.write(identity, record), release: async () => undefined };
}

interface ClaimBody {
  readonly state: "converting" | "released";
  readonly request_id: string;
  readonly started_at: string;
  /** When the holder's invocation ends at the latest (ISO 8601). */
  readonly until: string;
}

/** Whether a claim no longer holds: released, past its holder's deadline, or unreadable (no running conversion wrote it). */
function isOver(body: string, now: Date): boolean {
  try {
    const claim = JSON.parse(body) as Partial<ClaimBody>;
    if (claim.state === "released") return true;
    const until = Date.parse(String(claim.until));
    const started = Date.parse(String(claim.started_at));
    if (!Number.isNaN(until)) return now.getTime() > until + DEADLINE_GRACE_MS;
    return Number.isNaN(started) || now.getTime() - started > RETURN_MARKER_STALE_MS;
  } catch {
    return true;
  }
}

/**
 * The stored book converted from the ACSM with this identity, or the go-ahead to convert it. A live
 * claim of another request is waited for (looking again every {@link POLL_MS}) until it records its
 * book, gives up, or outlives its own deadline — at most while this invocation has time for its
 * own conversion after it. The index is read again after every claim taken, because a request
 * records its book before it releases the claim: whoever takes a released claim sees that book.
 */
export async function acquire(index: ReuseIndex, identity: string, ctx: ReuseContext): Promise<FoundBook | ToConvert> {
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const stored = async (): Promise<FoundBook | undefined> => {
    const record = await index.read(identity);
    if (record === undefined) return undefined;
    const book = await index.book(record.key);
    const left = book?.expiresAt === undefined ? Infinity : book.expiresAt.getTime() - ctx.now().getTime();
    if (book === undefined || left < MIN_LINK_MS) {
      ctx.log.info("the book converted from this ACSM has expired; converting again", { acsm_identity: identity, s3_key: record.key });
      return undefined;
    }
    if (ctx.usable !== undefined && !(await ctx.usable(record))) {
      ctx.log.info("the loan of the book converted from this ACSM has ended or was returned; converting again", { acsm_identity: identity, loan_id: record.loan?.id });
      return undefined;
    }
    return { kind: "stored", record, ...(book.expiresAt === undefined ? {} : { expiresAt: book.expiresAt }) };
  };
  const claimBody = (state: ClaimBody["state"]): string => {
    const now = ctx.now();
    const body: ClaimBody = {
      state,
      request_id: ctx.requestId,
      started_at: now.toISOString(),
      until: new Date(now.getTime() + Math.max(0, ctx.timeLeftMs())).toISOString(),
    };
    return JSON.stringify(body);
  };
  const holding = (etag: string): ToConvert => {
    let current = etag;
    return {
      kind: "convert",
      async record(record) {
        await index.write(identity, record);
      },
      async release() {
        try {
          const released = await index.replaceClaim(identity, current, claimBody("released"));
          if (released !== undefined) current = released;
        } catch (err) {
          ctx.log.error("could not release the conversion claim", { acsm_identity: identity, error: (err as Error).message });
        }
      },
    };
  };
  const unclaimed = withoutClaim(index, identity);

  const first = await stored();
  if (first) return first;
  let waited = false;
  for (;;) {
    let etag = await index.createClaim(identity, claimBody("converting"));
    if (etag === undefined) {
      const claim = await index.readClaim(identity);
      if (claim === undefined) continue; // gone in between (expired): create it again
      if (isOver(claim.body, ctx.now())) {
        etag = await index.replaceClaim(identity, claim.etag, claimBody("converting"));
        if (etag === undefined) continue; // another request took it first: look again
      }
    }
    if (etag !== undefined) {
      const found = await stored();
      if (found) {
        await holding(etag).release();
        return found;
      }
      return holding(etag);
    }
    // Another request is converting this ACSM: wait for its book.
    if (!waited) ctx.log.info("another request is converting this ACSM; waiting for its book", { acsm_identity: identity });
    waited = true;
    if (ctx.timeLeftMs() < POLL_MS + KEEP_FOR_CONVERTING_MS) {
      ctx.log.warn("the other conversion of this ACSM did not end in time; converting here too", { acsm_identity: identity });
      return unclaimed;
    }
    await sleep(POLL_MS);
    const found = await stored();
    if (found) return found;
  }
}
