import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import type { Context } from "aws-lambda";
import { loadConfig, type HandlerConfig } from "./config";
import { createLogger, type LogSink, type Logger } from "./log";
import { isFunctionUrlEvent, isPageRequest, MAX_BODY_BYTES, parseRequest, type AcsmSource } from "./request";
import { requireToken } from "./access";
import { refuseCrossOrigin } from "./cross-origin";
import { PAGE_HEADERS, PAGE_HTML } from "./page";
import { validateAcsm } from "./acsm";
import { fetchAcsm, systemResolver, type Resolver } from "./fetch-acsm";
import { DeviceManager, s3DeviceStore, type DeviceStore } from "./device";
import { convertAcsm, downloadName, type ConvertedBook } from "./convert";
import { s3OutputStore, type OutputStore } from "./output-store";
import { Loans, runLoanTool } from "./loans";
import { s3LoanStore, type LoanStore } from "./loan-store";
import { ForbiddenDestinationError, NetworkFailureError, ServiceError, UnreachableHostError } from "./errors";
import { runTool, toolEnvironment } from "./run-tool";
import { proxyEnvironment, startEgressProxy, type EgressPolicy } from "./egress-proxy";

/**
 * Where a converted book is stored. The per-request folder keeps books of different callers from
 * sharing a key (defect 12 of the original); the stack grants the role exactly `converted/*`.
 */
export function outputKey(requestId: string, filename: string): string {
  return `converted/${requestId}/${filename}`;
}

/** What the handler answers, for Function URLs and direct invocations alike. */
export interface HandlerResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** The parts of the Lambda context the handler uses. */
export type HandlerContext = Pick<Context, "awsRequestId" | "getRemainingTimeInMillis">;

/** Collaborators of the handler; {@link createHandler} fills in production defaults. */
export interface HandlerDeps {
  readonly config: HandlerConfig;
  readonly s3?: S3Client;
  readonly deviceStore?: DeviceStore;
  readonly outputStore?: OutputStore;
  /** Where loan tokens are kept. @default the device bucket under `adept/loans/` */
  readonly loanStore?: LoanStore;
  /** DNS for `acsm_url`. @default the system resolver */
  readonly resolver?: Resolver;
  /** Which addresses `acsm_url` may reach. @default public unicast only */
  readonly isAllowedAddress?: (address: string) => boolean;
  /**
   * Where the converter tools may connect (through the egress proxy).
   * @default the system resolver and public unicast addresses only
   */
  readonly egress?: Partial<EgressPolicy>;
  /** Variables added to the tools' minimal environment (tests: the stand-in's settings). @default none */
  readonly toolEnv?: () => Readonly<Record<string, string>>;
  /** Extra CA for `acsm_url` (tests' self-signed server). */
  readonly ca?: string | Buffer;
  /** Root for the per-invocation work directories and the device cache. @default os.tmpdir() (/tmp on Lambda) */
  readonly tmpRoot?: string;
  readonly logSink?: LogSink;
  readonly now?: () => Date;
}

/** Time limit for fetching an `acsm_url` (it is a few KB). */
const ACSM_URL_TIMEOUT_MS = 10_000;

/**
 * Builds the S3 client. Local S3 servers (tests, LocalStack) are reached through
 * `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` and need path-style addressing.
 */
export function createS3Client(config: HandlerConfig): S3Client {
  return config.s3Endpoint ? new S3Client({ endpoint: config.s3Endpoint, forcePathStyle: true }) : new S3Client({});
}

/** Time kept back from the invocation's deadline for upload, presigning and the response. */
export function safetyMarginMs(remainingMs: number): number {
  return Math.min(30_000, Math.max(250, Math.round(remainingMs * 0.15)));
}

/**
 * A JSON answer. Every one is `no-store`: they carry download links, loans, a private service's
 * health or a caller's error, none of which a browser or proxy may keep (RFC 9111 §5.2.2.5: a cache
 * must not store any part of the response; OWASP ASVS V8.2.1 asks this of sensitive data). The
 * page's own fetches already ask for no-store; this covers every other client and any cache between.
 */
function json(statusCode: number, body: unknown): HandlerResult {
  return { statusCode, headers: { "content-type": "application/json", "cache-control": "no-store" }, body: JSON.stringify(body) };
}

/**
 * Removes absolute file paths from a message meant for the caller. The tools name the files they
 * fail on (`Invalid ACSM file /tmp/knock-req-…/request.acsm`, `Error : /tmp/knock-devices/…`), and
 * the function's file layout is nobody else's business. A path is a `/` that starts a word (not the
 * `//` or path of a URL) followed by at least one more segment.
 */
export function redactPaths(message: string): string {
  return message.replace(/(^|[\s'"(=,;[])\/(?!\/)[^\s'"()<>,;]*\/[^\s'"()<>,;]*/g, "$1<path>");
}

function redactDetails(details: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).map(([k, v]) => [k, typeof v === "string" ? redactPaths(v) : v]));
}

/** Makes a name safe as the last segment of an S3 key and a download name (no path separators or control characters). */
export function safeFileName(name: string): string {
  const cleaned =
    Array.from(name, (c) => (c.charCodeAt(0) < 0x20 || c === "\u007f" || c === "/" || c === "\\" ? "_" : c))
      .join("")
      .trim() || "book";
  if (Buffer.byteLength(cleaned) <= 200) return cleaned;
  const dot = cleaned.lastIndexOf(".");
  const ext = dot > 0 ? cleaned.slice(dot) : "";
  let stem = cleaned.slice(0, dot > 0 ? dot : undefined);
  while (Buffer.byteLength(stem + ext) > 200) stem = stem.slice(0, -1);
  return stem + ext;
}

function sourceFileName(source: AcsmSource, given: string | undefined): string {
  if (given) return safeFileName(given);
  if (source.kind === "url") {
    try {
      const last = decodeURIComponent(new URL(source.url).pathname.split("/").pop() ?? "");
      if (last) return safeFileName(last);
    } catch {
      // Fall through to the generic name.
    }
  }
  return "upload.acsm";
}

/**
 * Creates a handler with its own device cache and S3 clients. Lambda uses the module's
 * {@link handler}; tests create several to model separate containers.
 */
export function createHandler(deps: HandlerDeps): (event: unknown, context: HandlerContext) => Promise<HandlerResult> {
  const { config } = deps;
  const s3 = deps.s3 ?? createS3Client(config);
  const tmpRoot = deps.tmpRoot ?? tmpdir();
  const devices = new DeviceManager(deps.deviceStore ?? s3DeviceStore(s3, config.deviceBucket), config.toolsDir, join(tmpRoot, "knock-devices"));
  const output = deps.outputStore ?? s3OutputStore(s3, config.outputBucket);
  const now = deps.now ?? (() => new Date());
  const loans = new Loans(deps.loanStore ?? s3LoanStore(s3, config.deviceBucket));
  /** Each health-checked tool's `-V` line, once it ran. */
  const converterVersions: Record<string, string> = {};

  async function health(log: Logger, requestId: string, timeLeftMs: () => number): Promise<HandlerResult> {
    // acsmdownloader converts; adept_loan_mgt returns loans early (POST /loans/<id>/return).
    for (const tool of ["acsmdownloader", "adept_loan_mgt"]) {
      if (converterVersions[tool] !== undefined) continue;
      const run = await runTool(join(config.toolsDir, tool), ["-V"], {
        timeoutMs: Math.min(5_000, timeLeftMs()),
        maxOutputBytes: 4096,
      }).catch(() => undefined);
      if (run === undefined || run.exitCode !== 0) {
        log.error("health check: converter not runnable", { tool });
        return json(500, {
          status: "unhealthy",
          error: `The converter tool ${tool} is missing or does not run.`,
          error_type: "ConverterMissing",
          request_id: requestId,
        });
      }
      converterVersions[tool] = run.output.trim().split("\n")[0].trim();
    }
    return json(200, { status: "ok", service: "knock-lambda", auth: config.functionUrlAuth, converter: { ...converterVersions }, limits: { max_body_bytes: MAX_BODY_BYTES, download_url_expiry_seconds: config.downloadUrlExpirySeconds } });
  }

  async function store(book: ConvertedBook, requestId: string): Promise<Record<string, unknown>> {
    const filename = safeFileName(book.filename);
    const key = outputKey(requestId, filename);
    await output.upload(key, book.path, book.contentType);
    const link = await output.presign(key, filename, book.contentType, config.downloadUrlExpirySeconds);
    return {
      filename,
      s3_key: key,
      download_url: link.url,
      size_bytes: book.sizeBytes,
      content_type: book.contentType,
      expires_at: link.expiresAt.toISOString(),
    };
  }

  /**
   * Runs `work` with the tools' environment: minimal, with every connection going through the egress
   * proxy, which applies the same address policy as acsm_url to the address it actually connects to.
   */
  async function withEgress<T>(log: Logger, work: (toolEnv: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
    const proxy = await startEgressProxy(
      {
        resolver: deps.egress?.resolver ?? deps.resolver ?? systemResolver,
        isAllowedAddress: deps.egress?.isAllowedAddress,
        route: deps.egress?.route,
      },
      log,
    );
    try {
      return await work(toolEnvironment({ ...deps.toolEnv?.(), ...proxyEnvironment(proxy.url) }));
    } catch (err) {
      // A tool that failed after the proxy refused one of its destinations failed because of it.
      const refusal = proxy.refused[0];
      if (refusal !== undefined && err instanceof ServiceError && err.statusCode >= 500) {
        throw new ForbiddenDestinationError(refusal.host, refusal.reason);
      }
      // A tool that could not talk to a server cannot say which; the proxy it went through can.
      const unreached = proxy.unreachable[0];
      if (unreached !== undefined && err instanceof NetworkFailureError) throw new UnreachableHostError(unreached.host, unreached.reason);
      throw err;
    } finally {
      await proxy.close();
    }
  }

  return async function handle(event, context) {
    const requestId = (context.awsRequestId || "unknown").replace(/[^A-Za-z0-9-]/g, "_");
    const log = createLogger(requestId, deps.logSink);
    const started = Date.now();
    const margin = safetyMarginMs(context.getRemainingTimeInMillis());
    const timeLeftMs = (): number => context.getRemainingTimeInMillis() - margin;
    let workDir: string | undefined;
    try {
      // Token mode: every Function URL request but the page (which holds no secret) shows the token
      // before anything else is read. Direct invocations already passed IAM (lambda:InvokeFunction).
      if (config.accessTokenSha256 !== undefined && isFunctionUrlEvent(event) && !isPageRequest(event)) {
        requireToken(event.headers, config.accessTokenSha256, log);
      }
      // Then, still before the body is read: a state-changing request that a browser says another
      // page sent is refused. After the token check, so that a caller without the token learns
      // nothing else (in TOKEN mode a foreign page cannot send the token anyway: a request that
      // carries Authorization needs a CORS preflight, and the page's token lives in its own origin).
      if (isFunctionUrlEvent(event)) {
        refuseCrossOrigin({ method: event.requestContext.http.method, headers: event.headers, domainName: event.requestContext.domainName });
      }
      const request = parseRequest(event);
      if (request.kind === "page") return { statusCode: 200, headers: { ...PAGE_HEADERS }, body: PAGE_HTML };
      if (request.kind === "health") return await health(log, requestId, timeLeftMs);
      if (request.kind === "loans") return json(200, await loans.list(now()));
      if (request.kind === "loan-forget") return json(200, await loans.forget(request.id, now()));
      if (request.kind === "loan-return") {
        await mkdir(tmpRoot, { recursive: true });
        workDir = await mkdtemp(join(tmpRoot, "knock-req-"));
        const { id } = request;
        return json(
          200,
          await loans.return(id, {
            log,
            now: now(),
            requestId,
            workDir,
            deviceDir: () => devices.current(log),
            run: (args) => withEgress(log, (toolEnv) => runLoanTool(config.toolsDir, id, args, timeLeftMs(), toolEnv)),
          }),
        );
      }

      const source = request.source;
      log.info("conversion requested", { source: source.kind });
      const acsm =
        source.kind === "content"
          ? source.content
          : await fetchAcsm(source.url, {
              resolver: deps.resolver ?? systemResolver,
              isAllowedAddress: deps.isAllowedAddress,
              ca: deps.ca,
              maxBytes: MAX_BODY_BYTES,
              timeoutMs: Math.min(ACSM_URL_TIMEOUT_MS, timeLeftMs()),
            });
      const info = validateAcsm(acsm, now());

      await mkdir(tmpRoot, { recursive: true });
      workDir = await mkdtemp(join(tmpRoot, "knock-req-"));
      const dir = workDir;
      const outputName = downloadName(info.title, info.format);
      const book = await withEgress(log, (toolEnv) =>
        convertAcsm(acsm, { toolsDir: config.toolsDir, devices, workDir: dir, timeLeftMs, log, toolEnv, outputName }),
      );
      const file = await store(book, requestId);
      // A loaned book: keep its loan token so that it can be listed and returned early.
      const loan = book.loanToken === undefined ? undefined : await loans.keep(book.loanToken, log);
      log.info("conversion done", { title: info.title, size_bytes: book.sizeBytes, duration_ms: Date.now() - started });
      return json(200, {
        message: "ACSM converted; download the book from download_url before expires_at.",
        output_files: [file],
        files_count: 1,
        source_acsm_filename: sourceFileName(source, request.filename),
        ...(loan === undefined ? {} : { loan }),
      });
    } catch (err) {
      if (err instanceof ServiceError) {
        log.warn("request failed", { status: err.statusCode, error_type: err.errorType, error: err.message });
        const answer = json(err.statusCode, {
          error: redactPaths(err.message),
          error_type: err.errorType,
          request_id: requestId,
          ...redactDetails(err.details),
        });
        // The error's own headers: a 401's challenge (RFC 7235 §3.1), a 405's Allow (RFC 9110
        // §15.5.6), a 415's Accept-Post.
        Object.assign(answer.headers, err.headers);
        return answer;
      }
      // Unexpected: details go to the log only; the caller gets a generic message.
      const e = err instanceof Error ? err : new Error(String(err));
      log.error("unexpected failure", { error_name: e.name, error: e.message, stack: e.stack });
      return json(500, {
        error: "Internal error while converting; see the function's logs for this request_id.",
        error_type: "InternalError",
        request_id: requestId,
      });
    } finally {
      if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
    }
  };
}

let defaultHandler: ReturnType<typeof createHandler> | undefined;

/**
 * Collaborators the exported entry point's handler is created with, besides its configuration.
 * Empty in production (the defaults of {@link HandlerDeps}); tests that invoke the entry point set
 * the converter's egress policy here before its first invocation, so it never needs real DNS.
 */
export const entryPointDeps: Partial<Omit<HandlerDeps, "config">> = {};

/**
 * The Lambda entry point (`handler.handler`). Configuration and clients are created on the first
 * invocation and reused while the container stays warm.
 */
export async function handler(event: unknown, context: Context): Promise<HandlerResult> {
  if (defaultHandler === undefined) {
    try {
      defaultHandler = createHandler({ ...entryPointDeps, config: loadConfig() });
    } catch (err) {
      // A deployment mistake, not the caller's: answer in the service's error shape (never a
      // runtime stack trace) and try again on the next invocation.
      const requestId = context.awsRequestId || "unknown";
      const message = err instanceof Error ? err.message : String(err);
      createLogger(requestId).error("function misconfigured", { error: message });
      return json(500, { error: `The function is misconfigured: ${message}`, error_type: "Misconfigured", request_id: requestId });
    }
  }
  return defaultHandler(event, context);
}
