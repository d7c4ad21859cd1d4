import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { createHandler, kindleAddressProblem, smtpUrlProblem, storesOn, tokenSha256, type HandlerConfig, type HandlerSeams } from "../../lambda/src/public";
import { dataFolderObjects, lockDataFolder, pruneExpiredBooks } from "./data-folder";
import { DOWNLOAD_PREFIX, downloadLinks, downloadSecret, feedToken } from "./download-links";
import { createFunctionUrlServer, currentOrigin } from "./function-url-server";
import { hostAllowList, hostLiteral, parseAllowedHost, parsePublicUrl } from "./host-check";

/** The four tools the handler runs (lambda/src/libgourou.ts). */
export const TOOL_NAMES = ["adept_activate", "acsmdownloader", "adept_remove", "adept_loan_mgt"] as const;

/**
 * What to do when the converter tools are missing under `knock serve`: where to give them and where
 * to get them. A sentence of its own, said at start-up and in the answers (no "knock serve:" prefix).
 */
export const TOOLS_HINT =
  `Start knock serve with --tools DIR or LIBGOUROU_BIN_DIR naming a folder with libgourou's ${TOOL_NAMES.join(", ")}; ` +
  'the README section "Run it locally" shows how to build them with Docker from the sources the image uses.';

/** Options for {@link startLocalService}. */
export interface LocalServiceOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. @default 9000 */
  readonly port?: number;
  /** Where the device, the books and the link secret live. @default ".knock" */
  readonly dataDir?: string;
  /**
   * More names the Host header may carry besides the server's own addresses (`--allowed-host`):
   * `name` or `name:port`. @default none: 127.0.0.1, localhost and [::1] on loopback; the
   * addresses the server listens on beyond it
   */
  readonly allowedHosts?: readonly string[];
  /**
   * The address the service is reached at when something sits in front of it (`--public-url`): the
   * base of the download links, and its host is accepted. @default the address a request's
   * connection arrived at (`http://127.0.0.1:9000`), never the request's Host header
   */
  readonly publicUrl?: string;
  /** Folder with the libgourou tools; undefined starts without them (health then answers 500). */
  readonly toolsDir?: string;
  /** The function's timeout in seconds. @default 900 */
  readonly timeoutSeconds?: number;
  /** Lifetime of download links. @default 3600 */
  readonly downloadUrlExpirySeconds?: number;
  /**
   * The access token every request but the page must carry (`Authorization: Bearer`), as a
   * deployment with `function_url_auth = TOKEN` asks for it. @default none: no token asked
   */
  readonly accessToken?: string;
  /**
   * Send to Kindle, as a deployment's `kindle_*` settings set it up: the Kindle address, the approved
   * sender and the SMTP server's URL (with its password; `knock serve` takes it from
   * `KNOCK_KINDLE_SMTP_URL`, never from a flag that `ps` would show). @default none: off
   */
  readonly kindle?: { readonly to: string; readonly from: string; readonly smtpUrl: string };
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /**
   * The handler's test seams, its second argument (tests: the converter's egress policy and the
   * stand-in's environment, as test/handler does). `now` defaults to this service's. @default none:
   * the handler's production defaults
   */
  readonly seams?: Partial<HandlerSeams>;
}

/** A running local service. */
export interface LocalService {
  /** `http://127.0.0.1:9000` */
  readonly url: string;
  /** The base of the download links when `publicUrl` was given, normalised. */
  readonly publicUrl: string | undefined;
  readonly dataDir: string;
  readonly toolsDir: string | undefined;
  /** The OPDS feed's secret (`<data>/opds-feed-token`): the feed is at `<url>/opds/<it>/`. */
  readonly feedToken: string;
  close(): Promise<void>;
}

/** True when `dir` holds all four tools. */
export function hasTools(dir: string | undefined): boolean {
  return dir !== undefined && TOOL_NAMES.every((t) => existsSync(join(dir, t)));
}

/**
 * How the handler explains a converter tool it cannot run under `knock serve` (its
 * `missingToolMessage`: health's answer and every conversion's or return's ConverterMissing): what
 * is wrong, then where to give the tools and where to get them.
 */
export function missingToolMessage(tool: string): string {
  return `The converter tool ${tool} is missing or does not run. ${TOOLS_HINT}`;
}

/**
 * Runs the real handler (lambda/src/handler.ts, the code the cloud runs) behind a local Function
 * URL, on the data folder's object stores instead of the buckets (the function's own stores, so the
 * same keys and conditional writes), with download links served by this server.
 */
export async function startLocalService(options: LocalServiceOptions = {}): Promise<LocalService> {
  const host = options.host ?? "127.0.0.1";
  // Checked before anything starts, so a bad value fails with its option's name, not at a request.
  const allowedHosts = (options.allowedHosts ?? []).map((h) => {
    try {
      return parseAllowedHost(h);
    } catch (err) {
      throw new TypeError(`allowedHosts: ${(err as Error).message}`);
    }
  });
  let publicUrl: string | undefined;
  try {
    publicUrl = options.publicUrl === undefined ? undefined : parsePublicUrl(options.publicUrl);
  } catch (err) {
    throw new TypeError(`publicUrl: ${(err as Error).message}`);
  }
  if (options.kindle !== undefined) {
    const problem = kindleAddressProblem(options.kindle.to) ?? smtpUrlProblem(options.kindle.smtpUrl);
    if (problem !== undefined) throw new TypeError(`kindle: ${problem}`);
  }
  const dataDir = resolve(options.dataDir ?? ".knock");
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const unlock = await lockDataFolder(dataDir);
  const toolsDir = options.toolsDir ? resolve(options.toolsDir) : undefined;
  let listening = "";

  const opdsFeedToken = await feedToken(dataDir);
  const links = downloadLinks({
    secret: await downloadSecret(dataDir),
    // Links name the server's own address (or the public URL), never the request's Host: a Host
    // the client chose would send the phone elsewhere, and HTTP/1.0 may have none.
    origin: () => publicUrl ?? currentOrigin() ?? listening,
    now: options.now,
  });
  // Books whose links have all expired are of no use to anyone: drop them at start, and then as
  // often as a link can expire. The books' store says when each goes (as S3 says a lifecycle
  // rule's expiry), so a reused book's fresh link never outlives the book.
  const linkLifetimeMs = (options.downloadUrlExpirySeconds ?? 3600) * 1000;
  const objects = dataFolderObjects(dataDir, links.make, linkLifetimeMs);

  const prune = (): void => {
    void pruneExpiredBooks(objects.books, linkLifetimeMs, options.now?.()).then((n) => {
      if (n > 0) log(`removed ${n} converted book(s) whose download links had expired`);
    });
  };
  prune();
  const pruning = setInterval(prune, Math.max(60_000, linkLifetimeMs)).unref();
  const config: HandlerConfig = {
    // Bucket names are unused: the data folder's object stores replace both buckets.
    outputBucket: "knock-serve-local",
    deviceBucket: "knock-serve-local",
    downloadUrlExpirySeconds: options.downloadUrlExpirySeconds ?? 3600,
    // Without tools the handler answers ConverterMissing, as a cloud image without them would.
    toolsDir: toolsDir ?? join(dataDir, "no-tools"),
    s3Endpoint: undefined,
    accessTokenSha256: options.accessToken === undefined ? undefined : tokenSha256(options.accessToken),
    functionUrlAuth: options.accessToken === undefined ? "NONE" : "TOKEN",
    // The feed answers to its own secret, as a TOKEN or NONE deployment's (an e-reader app sends no token).
    opdsFeedTokenSha256: tokenSha256(opdsFeedToken),
    ...(options.kindle === undefined ? {} : { kindle: { to: options.kindle.to, from: options.kindle.from, transport: "smtp" as const, smtpParameter: "KNOCK_KINDLE_SMTP_URL" } }),
  };
  const kindleUrl = options.kindle?.smtpUrl;
  const handle = createHandler(
    {
      config,
      stores: storesOn(objects.device, objects.books),
      missingToolMessage,
      tmpRoot: join(dataDir, "tmp"),
      logSink: log,
    },
    {
      ...(options.now === undefined ? {} : { now: options.now }),
      ...options.seams,
      // The URL is this process's own (no SSM here); tests add their server's CA through seams.
      ...(kindleUrl === undefined ? {} : { kindle: { smtpUrl: async () => kindleUrl, ...options.seams?.kindle } }),
    },
  );
  // Every request first names one of this server's own hosts (DNS rebinding: see host-check.ts).
  const checkHost = hostAllowList({ bindHost: host, allowedHosts, publicUrl });
  const server = createFunctionUrlServer({
    handler: (event, context) => handle(event, context),
    timeoutMs: (options.timeoutSeconds ?? 900) * 1000,
    admit: (req) => {
      const refusal = checkHost({
        httpVersion: req.httpVersion,
        url: req.url ?? "/",
        rawHeaders: req.rawHeaders,
        localAddress: req.socket.localAddress ?? host,
        localPort: req.socket.localPort ?? 0,
      });
      return refusal && { statusCode: refusal.statusCode, errorType: refusal.errorType, message: refusal.message, details: { refused_host: refusal.refusedHost } };
    },
    routes: [{ prefix: DOWNLOAD_PREFIX, serve: (req, res) => links.serve(objects.books, req, res) }],
    log,
  });
  try {
    await new Promise<void>((done, fail) => {
      server.once("error", fail);
      server.listen(options.port ?? 9000, host, () => {
        server.off("error", fail);
        done();
      });
    });
  } catch (err) {
    clearInterval(pruning);
    await unlock();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  listening = `http://${hostLiteral(host)}:${port}`;
  return {
    url: listening,
    publicUrl,
    dataDir,
    toolsDir,
    feedToken: opdsFeedToken,
    close: async () => {
      clearInterval(pruning);
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeIdleConnections();
        // Requests still converting after 2 s are cut, as Lambda stops a function it shuts down.
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      await unlock();
    },
  };
}
