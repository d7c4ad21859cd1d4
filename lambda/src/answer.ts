import type { Context } from "aws-lambda";
import { JSON_CONTENT_TYPE } from "./contract";

/** What the handler answers, for Function URLs and direct invocations alike. */
export interface HandlerResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** The parts of the Lambda context the handler uses. */
export type HandlerContext = Pick<Context, "awsRequestId" | "getRemainingTimeInMillis">;

/** A handler: one container's, or the entry point's. */
export type Handler = (event: unknown, context: HandlerContext) => Promise<HandlerResult>;

/**
 * A JSON answer of one of the contract's types. Every one is `no-store`: they carry download links,
 * loans, a private service's health or a caller's error, none of which a browser or proxy may keep
 * (RFC 9111 §5.2.2.5: a cache must not store any part of the response; OWASP ASVS V8.2.1 asks this
 * of sensitive data). The page's own fetches already ask for no-store; this covers every other
 * client and any cache between.
 */
export function jsonAnswer<T extends object>(statusCode: number, body: T): HandlerResult {
  return { statusCode, headers: { "content-type": JSON_CONTENT_TYPE, "cache-control": "no-store" }, body: JSON.stringify(body) };
}
