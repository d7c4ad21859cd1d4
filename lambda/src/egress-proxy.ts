import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { connect as netConnect, isIP, type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { isPublicAddress } from "./address-policy";
import type { UnreachableReason } from "./errors";
import type { Resolver } from "./fetch-acsm";
import type { Logger } from "./log";

/** Where the converter may connect, and how. Tests inject all three; production uses the defaults. */
export interface EgressPolicy {
  /** DNS for the targets. */
  readonly resolver: Resolver;
  /** Which resolved addresses may be connected to. @default isPublicAddress */
  readonly isAllowedAddress?: (address: string) => boolean;
  /**
   * Where a checked destination is actually dialled. @default the destination itself.
   * Tests map an explicitly allowed test address to their fake distributor's port; the check has
   * already happened, so this cannot let anything through that the policy refused.
   */
  readonly route?: (address: string, port: number) => { host: string; port: number };
}

/** Limits of the proxy. */
export interface EgressLimits {
  /** Time to establish one connection to a target. @default 10 000 ms */
  readonly connectTimeoutMs?: number;
  /** A connection with no traffic in either direction for this long is closed. @default 60 000 ms */
  readonly idleTimeoutMs?: number;
  /** Bytes received from targets over the proxy's life (the book is one of them). @default 2 GiB */
  readonly maxBytes?: number;
}

/** A connection the proxy refused, for the caller's answer. */
export interface RefusedDestination {
  readonly host: string;
  readonly port: number;
  /** The address that was refused, or undefined when the host did not resolve. */
  readonly address: string | undefined;
  readonly reason: string;
}

/** A destination the proxy allowed but could not reach: the network's failure, not the policy's. */
export interface UnreachableDestination {
  readonly host: string;
  readonly port: number;
  readonly reason: UnreachableReason;
}

/** A running proxy; `close()` ends it and every connection through it. */
export interface EgressProxy {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Destinations refused so far. */
  readonly refused: readonly RefusedDestination[];
  /** Destinations that could not be reached so far, oldest first. */
  readonly unreachable: readonly UnreachableDestination[];
  close(): Promise<void>;
}

/** The reason for a failed connection to an allowed address, from Node's error code. */
function connectFailure(err: NodeJS.ErrnoException): UnreachableReason {
  if (err.code === "ECONNREFUSED") return "refused the connection";
  if (err.code === "ENETUNREACH" || err.code === "EHOSTUNREACH") return "network unreachable";
  return "did not answer";
}

/**
 * The proxy environment for the converter tools. libgourou's tools use libcurl with no proxy
 * settings of their own, so libcurl's environment rules apply (libcurl CURLOPT_PROXY docs,
 * "Environment variables"): `http_proxy` is read in lower case only (the upper-case form is ignored
 * on purpose, "httpoxy"), `HTTPS_PROXY`/`https_proxy` and `ALL_PROXY`/`all_proxy` in either case,
 * and `NO_PROXY`/`no_proxy` lists hosts that bypass the proxy — so those must stay unset.
 */
export function proxyEnvironment(proxyUrl: string): Record<string, string> {
  return {
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    all_proxy: proxyUrl,
    ALL_PROXY: proxyUrl,
  };
}

const HOP_BY_HOP = ["proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "trailer", "upgrade"];

/**
 * Starts a forward proxy on 127.0.0.1 for the converter tools: absolute-form HTTP requests and
 * CONNECT tunnels (how libcurl reaches https: URLs through a proxy). Each target host is resolved
 * here and every address it resolves to must pass the policy; the connection then goes to that
 * checked address, so DNS cannot answer differently between check and connect. This covers every
 * connection the tools make — the token's operator URL, the links the distributor returns, each
 * redirect libcurl follows (FOLLOWLOCATION) — because each one is a new request through here.
 */
export async function startEgressProxy(policy: EgressPolicy, log: Logger, limits: EgressLimits = {}): Promise<EgressProxy> {
  const allowed = policy.isAllowedAddress ?? isPublicAddress;
  const route = policy.route ?? ((host: string, port: number) => ({ host, port }));
  const connectTimeoutMs = limits.connectTimeoutMs ?? 10_000;
  const idleTimeoutMs = limits.idleTimeoutMs ?? 60_000;
  const maxBytes = limits.maxBytes ?? 2 * 1024 ** 3;
  const refused: RefusedDestination[] = [];
  const unreachable: UnreachableDestination[] = [];
  const unreached = (host: string, port: number, reason: UnreachableReason): void => {
    unreachable.push({ host: host.replace(/^\[|\]$/g, ""), port, reason });
    log.warn("egress host unreachable", { host, port, reason });
  };
  const sockets = new Set<Duplex>();
  let received = 0;

  /**
   * Resolves and checks a destination: the address to dial, "refused" (recorded: the policy said
   * no) or "unresolved" (a network failure like any other, answered 502).
   */
  async function check(host: string, port: number): Promise<string | "refused" | "unresolved"> {
    const bare = host.replace(/^\[|\]$/g, "");
    let addresses: string[];
    if (isIP(bare)) addresses = [bare];
    else {
      try {
        addresses = (await policy.resolver(bare)).map((a) => a.address);
      } catch {
        addresses = [];
      }
    }
    if (addresses.length === 0) {
      unreachable.push({ host: bare, port, reason: "does not resolve" });
      log.warn("egress host does not resolve", { host: bare, port });
      return "unresolved";
    }
    const bad = addresses.find((a) => !allowed(a));
    if (bad !== undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      const reason = bad !== undefined ? `resolves to a private or reserved address (${bad})` : "is not a valid port";
      refused.push({ host: bare, port, address: bad, reason });
      log.warn("egress refused", { host: bare, port, address: bad, reason });
      return "refused";
    }
    log.info("egress", { host: bare, port, address: addresses[0] });
    return addresses[0];
  }

  const count = (n: number, stop: () => void): void => {
    received += n;
    if (received > maxBytes) {
      log.warn("egress byte limit reached", { max_bytes: maxBytes });
      stop();
    }
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void forward(req, res);
  });

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let target: URL;
    try {
      target = new URL(req.url ?? "");
    } catch {
      res.writeHead(400).end();
      return;
    }
    // Only plain http travels as absolute-form; https goes through CONNECT.
    if (target.protocol !== "http:") {
      res.writeHead(400).end();
      return;
    }
    const port = Number(target.port || 80);
    const address = await check(target.hostname, port);
    if (address === "refused" || address === "unresolved") {
      req.resume();
      if (address === "unresolved") res.writeHead(502).end();
      else res.writeHead(403, { "content-type": "text/plain" }).end("destination refused by the service's egress policy\n");
      return;
    }
    const headers = { ...req.headers };
    for (const h of HOP_BY_HOP) delete headers[h];
    const dial = route(address, port);
    const up = httpRequest({ host: dial.host, port: dial.port, method: req.method, path: `${target.pathname}${target.search}`, headers, timeout: connectTimeoutMs });
    up.on("timeout", () => up.destroy(Object.assign(new Error("target timed out"), { code: "ETIMEDOUT" })));
    up.on("error", (err: NodeJS.ErrnoException) => {
      if (!res.headersSent) {
        unreached(target.hostname, port, connectFailure(err));
        res.writeHead(502).end();
      } else res.destroy();
    });
    up.on("response", (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.on("data", (chunk: Buffer) => count(chunk.length, () => up.destroy()));
      upRes.pipe(res);
    });
    req.pipe(up);
  }

  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? "");
    if (!m) {
      client.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const port = Number(m[2]);
    void check(m[1], port).then((address) => {
      if (address === "refused" || address === "unresolved") {
        client.end(address === "refused" ? "HTTP/1.1 403 Forbidden\r\n\r\n" : "HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
      }
      const dial = route(address, port);
      const upstream: Socket = netConnect({ host: dial.host, port: dial.port });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      const timer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })), connectTimeoutMs);
      let connected = false;
      upstream.once("connect", () => {
        connected = true;
        clearTimeout(timer);
        upstream.setTimeout(idleTimeoutMs, () => upstream.destroy());
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (head.length) upstream.write(head);
        upstream.on("data", (chunk: Buffer) => count(chunk.length, () => upstream.destroy()));
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (!connected) unreached(m[1], port, connectFailure(err));
        if (client.writable) client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      });
      upstream.on("close", () => client.destroy());
      client.on("close", () => upstream.destroy());
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    refused,
    unreachable,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
