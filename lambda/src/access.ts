import { createHash, timingSafeEqual } from "node:crypto";
import { UnauthorizedError } from "./errors";
import type { Logger } from "./log";

/**
 * Token access (`function_url_auth = TOKEN`): the Function URL is public and the handler itself
 * asks for `Authorization: Bearer <token>`. The function knows only the token's SHA-256 (the stack
 * keeps the token as a Pulumi secret), so its configuration reveals nothing a caller could use.
 */

/** SHA-256 of a token as the stack computes it: over the token's UTF-8 text. */
export function tokenSha256(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/**
 * True when `presented` is the token whose SHA-256 is `expected`. Both sides are 32-byte digests,
 * so `timingSafeEqual` never sees different lengths, and the time taken says nothing about how much
 * of a guess was right (nor how long the token is).
 */
export function tokenMatches(presented: string | undefined, expected: Buffer): boolean {
  const candidate = tokenSha256(presented ?? "");
  if (expected.length !== candidate.length) return false;
  // Run the comparison even for a missing token, so a missing and a wrong one take the same path.
  return timingSafeEqual(candidate, expected) && presented !== undefined;
}

/**
 * The token of an `Authorization` header using the Bearer scheme, or undefined. RFC 7235 §2.1:
 * `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]` and the auth-scheme is
 * case-insensitive, so `bearer x` works too; the token itself is compared exactly (RFC 6750 §2.1).
 */
export function bearerToken(authorization: string | undefined): string | undefined {
  const m = /^\s*bearer +(\S+)\s*$/i.exec(authorization ?? "");
  return m?.[1];
}

/**
 * Refuses a request without the right token: 401 with the service's JSON error. The attempt is
 * logged by what was wrong (missing, not Bearer, wrong), never with the token.
 */
export function requireToken(headers: Readonly<Record<string, string | undefined>> | undefined, expected: Buffer, log: Logger): void {
  const authorization = headers?.authorization;
  const token = bearerToken(authorization);
  if (tokenMatches(token, expected)) return;
  const reason = authorization === undefined ? "missing" : token === undefined ? "not a Bearer token" : "wrong token";
  log.warn("access refused", { reason });
  throw new UnauthorizedError(reason === "missing"
    ? "This service needs its access token: open the access link (`knock open` prints it), or send Authorization: Bearer <token>."
    : "The access token is not valid: open the current access link (`knock open` prints it); the token may have been rotated.");
}
