import { lookup as dnsLookup } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction, Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { CliError } from "./failures";
import type { OutgoingRequest, RequestSigner } from "./aws-signing";

/**
 * DNS as Node does it, except that names under `.invalid` fail at once, without asking any server:
 * RFC 6761 §6.4 reserves them to never resolve and asks resolver libraries to answer them negatively
 * themselves (getaddrinfo sends them to the configured DNS server like any other name).
 */
export const lookupHost: LookupFunction = (hostname, options, callback) => {
  if (/(^|\.)invalid\.?$/i.test(hostname)) {
    process.nextTick(() => callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", hostname }), "", 4));
    return;
  }
  dnsLookup(hostname, options, callback);
};

/** Where to open the TCP connection instead of the URL's host (like curl's --connect-to). */
export interface ConnectTo {
  readonly host: string;
  readonly port: number;
}

/**
 * Reads `KNOCK_CONNECT_TO=host:port`: connect there while keeping the URL's host name for TLS (SNI
 * and certificate check), the Host header and the signature. For tests and for reaching a service
 * through a tunnel; never needed in normal use.
 */
export function connectToFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectTo | undefined {
  const raw = env.KNOCK_CONNECT_TO?.trim();
  if (!raw) return undefined;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(raw);
  if (!m) throw new CliError("usage", `KNOCK_CONNECT_TO must be host:port, got "${raw}".`);
  return { host: m[1], port: Number(m[2]) };
}

/** A complete answer (the service's JSON answers are small). */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
}

/** Options for {@link openResponse}. */
export interface SendOptions {
  readonly connectTo?: ConnectTo;
  readonly signal?: AbortSignal;
  /**
   * Adds the request's authentication headers once its connection is open, so that a host that does
   * not resolve or answer is reported as such rather than as missing credentials or region. @default none
   */
  readonly sign?: RequestSigner;
  /** Gives up when no byte moves for this long. @default 0 (none: a conversion may take minutes) */
  readonly idleTimeoutMs?: number;
}

/** Explains a network failure (DNS, refused, reset…) in one line with the next step. */
export function networkFailure(err: unknown, url: URL): CliError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = url.host;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NODATA" || code === "EAI_NONAME") {
    return new CliError("dns", `Cannot resolve ${url.hostname} (${code}): check the URL and your network or DNS.`, {}, { cause: err });
  }
  if (code === "ECONNREFUSED") {
    return new CliError(
      "network",
      `Nothing answers at ${where} (connection refused): is the service running (\`npx knock serve\` for a local one) and the URL right?`,
      {},
      { cause: err },
    );
  }
  if (code === "ENETUNREACH" || code === "EHOSTUNREACH" || code === "ETIMEDOUT" || code === "ECONNRESET" || code === "EPIPE") {
    return new CliError("network", `Network error talking to ${where} (${code}): check your connection and retry.`, {}, { cause: err });
  }
  if (typeof code === "string" && /CERT|SSL|TLS/.test(code)) {
    return new CliError("network", `TLS error with ${where} (${code}): the certificate is not trusted for this host.`, {}, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError("network", `Request to ${where} failed: ${message}${code ? ` (${code})` : ""}.`, {}, { cause: err });
}

/**
 * Sends one request and returns the response stream (the caller reads or pipes it). Network
 * failures come back as {@link CliError}s; an abort as an `AbortError`; a signer's failure as it
 * threw it. The headers are signed only once the connection (and its TLS) is up.
 */
export function openResponse(request: OutgoingRequest, options: SendOptions = {}): Promise<IncomingMessage> {
  const { url } = request;
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolveResponse, reject) => {
    const req = send(
      {
        method: request.method,
        protocol: url.protocol,
        host: options.connectTo?.host ?? url.hostname.replace(/^\[|\]$/g, ""),
        port: options.connectTo?.port ?? (url.port ? Number(url.port) : undefined),
        // With a connect-to override TLS still checks the certificate against the URL's host.
        servername: url.protocol === "https:" ? url.hostname : undefined,
        path: url.pathname + url.search,
        headers: { host: url.host, ...request.headers },
        signal: options.signal,
        lookup: lookupHost,
      },
      resolveResponse,
    );
    req.on("error", (err) => reject(err.name === "AbortError" ? err : networkFailure(err, url)));
    if (options.idleTimeoutMs) req.setTimeout(options.idleTimeoutMs, () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    const { sign } = options;
    if (sign === undefined) {
      req.end(request.body);
      return;
    }
    // Nothing is written before end(), so headers can still be set once the socket is connected.
    req.once("socket", (socket: Socket) => {
      const ready = (): void => {
        sign(request).then(
          (headers) => {
            for (const [name, value] of Object.entries(headers)) req.setHeader(name, value);
            req.end(request.body);
          },
          (err: unknown) => {
            reject(err);
            req.destroy();
          },
        );
      };
      // A kept-alive socket is already connected (and its TLS established); a new one is not yet.
      if (!socket.connecting) ready();
      else socket.once(socket instanceof TLSSocket ? "secureConnect" : "connect", ready);
    });
  });
}

/** Reads a whole (small) response. */
export async function readAll(res: IncomingMessage, url: URL): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res) chunks.push(chunk as Buffer);
  } catch (err) {
    throw (err as Error).name === "AbortError" ? err : networkFailure(err, url);
  }
  return Buffer.concat(chunks);
}

/** Signs (when a signer is given) and sends a request, returning the whole answer. */
export async function call(
  request: OutgoingRequest,
  sign: RequestSigner,
  options: SendOptions = {},
): Promise<Answer> {
  const res = await openResponse(request, { ...options, sign });
  const body = await readAll(res, request.url);
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}
