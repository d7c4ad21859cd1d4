import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress } from "node:dns";
import { request } from "node:https";
import { isIP } from "node:net";
import { AcsmUrlError } from "./errors";
import { isPublicAddress } from "./address-policy";

/** Resolves a host name to its addresses; injected so tests never use real DNS. */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/** Default resolver: the system's (what a plain https request would use). */
export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Limits and collaborators for fetching an `acsm_url`. */
export interface FetchAcsmOptions {
  readonly resolver: Resolver;
  /** Which resolved addresses may be connected to. @default isPublicAddress */
  readonly isAllowedAddress?: (address: string) => boolean;
  /** Largest accepted response body in bytes. */
  readonly maxBytes: number;
  /** Time budget for the whole fetch including redirects, in ms. */
  readonly timeoutMs: number;
  /** Redirects followed before giving up. @default 3 */
  readonly maxRedirects?: number;
  /** Extra trusted CA certificates (tests use a self-signed one). */
  readonly ca?: string | Buffer;
}

function parseHttpsUrl(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new AcsmUrlError(`acsm_url "${raw}" is not a valid URL; give an https:// URL.`);
  }
  if (url.protocol !== "https:") {
    throw new AcsmUrlError(`acsm_url must use https:, not ${url.protocol} (${url.origin === "null" ? raw : url.origin}).`);
  }
  if (url.username || url.password) {
    throw new AcsmUrlError("acsm_url must not contain credentials.");
  }
  return url;
}

/**
 * Downloads the ACSM behind an https URL, refusing to connect to private, loopback, link-local,
 * unique-local and CGNAT addresses. The check runs inside the socket's own DNS lookup, so the
 * address checked is the address connected to (no window for DNS rebinding), and again on every
 * redirect hop. Every refusal or limit breach is an {@link AcsmUrlError} (400).
 */
export async function fetchAcsm(rawUrl: string, options: FetchAcsmOptions): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  const maxRedirects = options.maxRedirects ?? 3;
  let url = parseHttpsUrl(rawUrl);
  for (let hop = 0; ; hop++) {
    const result = await fetchOnce(url, options, deadline);
    if (result.kind === "body") return result.body;
    if (hop >= maxRedirects) {
      throw new AcsmUrlError(`acsm_url redirected more than ${maxRedirects} times; give the final URL of the ACSM file.`);
    }
    url = parseHttpsUrl(result.location, url);
  }
}

type FetchResult = { kind: "body"; body: string } | { kind: "redirect"; location: string };

function fetchOnce(url: URL, options: FetchAcsmOptions, deadline: number): Promise<FetchResult> {
  const allowed = options.isAllowedAddress ?? isPublicAddress;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  // Node skips the lookup function for IP literals, so those are checked here.
  if (isIP(host) && !allowed(host)) {
    return Promise.reject(new AcsmUrlError(`acsm_url points to a private or reserved address (${host}); only public hosts are allowed.`));
  }
  const remaining = deadline - Date.now();
  if (remaining <= 0) return Promise.reject(new AcsmUrlError("acsm_url took too long to answer."));

  return new Promise<FetchResult>((resolve, reject) => {
    let refused: AcsmUrlError | undefined;
    const req = request(
      url,
      {
        method: "GET",
        agent: false, // a fresh connection per hop, so every hop goes through the checked lookup
        ca: options.ca,
        headers: { accept: "application/vnd.adobe.adept+xml, application/xml, text/xml, */*" },
        lookup: (hostname, lookupOptions, callback) => {
          options.resolver(hostname).then(
            (addresses) => {
              const bad = addresses.find((a) => !allowed(a.address));
              if (addresses.length === 0 || bad) {
                refused = new AcsmUrlError(
                  bad
                    ? `acsm_url host ${hostname} resolves to a private or reserved address (${bad.address}); only public hosts are allowed.`
                    : `acsm_url host ${hostname} does not resolve.`,
                );
                callback(refused, "", 4);
                return;
              }
              if ((lookupOptions as { all?: boolean }).all) {
                (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
              } else {
                callback(null, addresses[0].address, addresses[0].family);
              }
            },
            () => {
              refused = new AcsmUrlError(`acsm_url host ${hostname} does not resolve.`);
              callback(refused, "", 4);
            },
          );
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          resolve({ kind: "redirect", location: res.headers.location });
          return;
        }
        if (status !== 200) {
          res.resume();
          reject(new AcsmUrlError(`acsm_url answered HTTP ${status}; it must answer 200 with the ACSM file.`));
          return;
        }
        const declared = Number(res.headers["content-length"] ?? "0");
        if (declared > options.maxBytes) {
          req.destroy();
          reject(new AcsmUrlError(`acsm_url serves ${declared} bytes; an ACSM file may be at most ${options.maxBytes} bytes.`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            req.destroy(new AcsmUrlError(`acsm_url serves more than ${options.maxBytes} bytes; an ACSM file is a few KB.`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => resolve({ kind: "body", body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", (err) => reject(err instanceof AcsmUrlError ? err : new AcsmUrlError(`acsm_url download failed: ${err.message}`)));
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new AcsmUrlError(`acsm_url did not deliver the ACSM within ${Math.round(remaining)} ms.`));
    }, remaining);
    req.on("close", () => clearTimeout(timer));
    req.on("error", (err) => {
      clearTimeout(timer);
      if (refused) reject(refused);
      else if (err instanceof AcsmUrlError) reject(err);
      else reject(new AcsmUrlError(`acsm_url could not be fetched: ${err.message}`));
    });
    req.end();
  });
}
