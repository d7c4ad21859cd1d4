/**
 * Which `Host` a request to `knock serve` may name. A browser sends whatever name the page's address
 * used, so a page on a name an attacker points at 127.0.0.1 (DNS rebinding) is, to the browser, the
 * same origin as the server: it may read every answer. The server is the only party that can tell,
 * by refusing names that are not its own before anything else runs — not even the download links.
 *
 * RFC 9110 §7.2 (Host and :authority) and RFC 9112 §3.2 (request target, a Host field is required in
 * HTTP/1.1; more than one is a 400) and §3.2.2 (an absolute-form target overrides Host); §15.5.20: 421
 * Misdirected Request is "the request was directed at a server that is unable or unwilling to
 * produce an authoritative response for the target URI".
 */
import { isIPv6 } from "node:net";

/** The names a loopback server answers for: browsers resolve `localhost` to loopback themselves. */
const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

/** True for addresses that reach only this machine (`127.0.0.0/8`, `::1`, `localhost`). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/** True for a bind to every interface (`0.0.0.0`, `::`): the server then answers on each of them. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]" || host === "";
}

/** An address as it appears in a URL or a Host header: IPv6 in brackets, IPv4-mapped IPv6 unwrapped. */
export function hostLiteral(address: string): string {
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
  return bare.includes(":") && !bare.startsWith("[") ? `[${bare}]` : bare;
}

const LABEL = "[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?";
const HOST_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);

/**
 * Checks one `--allowed-host` value and returns it normalised (lower case, IPv6 in brackets):
 * a host name or address, optionally with `:port`. Without a port it is accepted with the listening
 * port or none, as the built-in names are; with one, only with that port (a proxy in front that
 * forwards its own `host:port`). Throws with the reason otherwise.
 */
export function parseAllowedHost(value: string): string {
  const raw = value.trim().toLowerCase();
  // A bare IPv6 address has colons of its own: bracket it rather than read its last group as a port.
  if (isIPv6(raw)) return `[${raw}]`;
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(raw);
  const name = m?.[1] ?? "";
  const port = m?.[2];
  const nameOk = name.startsWith("[") ? isIPv6(name.slice(1, -1)) : name.length <= 253 && HOST_NAME.test(name);
  if (!m || !nameOk || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    throw new Error(`"${value}" is not a host name: give a name or address such as knock.lan, 192.168.1.20 or [fe80::1], optionally with :PORT.`);
  }
  return port === undefined ? name : `${name}:${Number(port)}`;
}

/**
 * Checks a `--public-url` value and returns it without a trailing slash: an http: or https: URL
 * with no user name, query or fragment (the server appends its own paths to it). Throws with the
 * reason otherwise.
 */
export function parsePublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`"${value}" is not a URL: give the address the service is reached at, such as https://knock.example.org.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`"${value}" must start with http:// or https://.`);
  if (url.username !== "" || url.password !== "") throw new Error(`"${value}" must not carry a user name or password.`);
  // `new URL` drops an empty "?" or "#", so look at the text as given too.
  if (url.search !== "" || url.hash !== "" || /[?#]/.test(value)) throw new Error(`"${value}" must not have a query (?…) or a fragment (#…): the server adds its own paths to it.`);
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** Options for {@link hostAllowList}. */
export interface HostAllowListOptions {
  /** The address the server was told to bind (`--host`). */
  readonly bindHost: string;
  /** More names to accept (`--allowed-host`), each as {@link parseAllowedHost} returns it. @default none */
  readonly allowedHosts?: readonly string[];
  /** `--public-url`, as {@link parsePublicUrl} returns it: its host is accepted too. @default none */
  readonly publicUrl?: string;
}

/** What the check sees of a request. */
export interface HostCheckRequest {
  readonly httpVersion: string;
  /** The request target as sent (`/path?q` or, rarely, absolute-form `http://host/path`). */
  readonly url: string;
  /** Node's `rawHeaders`: name, value, name, value… */
  readonly rawHeaders: readonly string[];
  /** The address and port the connection arrived at (the socket's local end). */
  readonly localAddress: string;
  readonly localPort: number;
}

/** Why a request was refused, for the error answer. */
export interface HostRefusal {
  readonly statusCode: 400 | 421;
  readonly errorType: string;
  readonly message: string;
  /** The Host as sent, or null when there was none. */
  readonly refusedHost: string | null;
}

/**
 * The check `knock serve` runs on every request before anything else. Accepted, each with the
 * listening port or with no port:
 * - `127.0.0.1`, `localhost` and `[::1]` when bound to loopback or to every interface;
 * - the address the connection arrived at and the address given to `--host`;
 * - each `--allowed-host` (with exactly its port when it names one) and the host of `--public-url`.
 * Anything else, and an HTTP/1.0 request without Host, is 421; an HTTP/1.1 request without Host
 * and one with two Host fields are 400, as RFC 9112 §3.2 requires (the server leaves the first of
 * those to this check, so that the answer is JSON like every other refusal).
 */
export function hostAllowList(options: HostAllowListOptions): (request: HostCheckRequest) => HostRefusal | undefined {
  // Names accepted with the listening port or none, and host:port pairs accepted as they are.
  const names = new Set<string>();
  const exact = new Set<string>();
  const add = (entry: string): void => {
    if (/:\d+$/.test(entry) && !entry.endsWith("]")) exact.add(entry);
    else names.add(entry);
  };
  if (isLoopbackHost(options.bindHost) || isWildcardHost(options.bindHost)) for (const n of LOOPBACK_NAMES) names.add(n);
  if (!isWildcardHost(options.bindHost)) names.add(hostLiteral(options.bindHost.toLowerCase()));
  for (const h of options.allowedHosts ?? []) add(h);
  if (options.publicUrl !== undefined) {
    const url = new URL(options.publicUrl);
    add(url.port === "" ? url.hostname : `${url.hostname}:${url.port}`);
  }

  return (request) => {
    const hosts: string[] = [];
    for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) if (request.rawHeaders[i].toLowerCase() === "host") hosts.push(request.rawHeaders[i + 1]);
    if (hosts.length > 1) {
      return { statusCode: 400, errorType: "BadRequest", message: `The request has ${hosts.length} Host headers; HTTP allows exactly one.`, refusedHost: hosts.join(",") };
    }
    if (hosts.length === 0 && request.httpVersion !== "1.0" && request.httpVersion !== "0.9") {
      return { statusCode: 400, errorType: "BadRequest", message: `The request has no Host header, which HTTP/${request.httpVersion} requires.`, refusedHost: null };
    }
    // An absolute-form target names the host itself and takes precedence over Host (RFC 9112 §3.2.2).
    let target: string | undefined = hosts[0]?.trim();
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(request.url)) {
      try {
        target = new URL(request.url).host;
      } catch {
        target = request.url;
      }
    }
    const accepted = [...names].flatMap((n) => [n, `${n}:${request.localPort}`]);
    const local = hostLiteral(request.localAddress.toLowerCase());
    if (!names.has(local)) accepted.push(local, `${local}:${request.localPort}`);
    accepted.push(...exact);
    if (target !== undefined && accepted.includes(target.toLowerCase())) return undefined;

    const own = accepted.filter((a) => a.endsWith(`:${request.localPort}`) || exact.has(a)).join(", ");
    const why =
      "knock serve answers only for its own addresses, so that a web page on a name that points at this machine (DNS rebinding) cannot use it; " +
      "start it with --allowed-host NAME to add a name.";
    return {
      statusCode: 421,
      errorType: "MisdirectedRequest",
      message:
        target === undefined
          ? `The request has no Host header (HTTP/${request.httpVersion}); this server answers only requests that name it: ${own}. ${why}`
          : `Host "${target}" is not an address of this server (it answers for ${own}). ${why}`,
      refusedHost: target ?? null,
    };
  };
}
