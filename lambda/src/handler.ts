import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import type { Context } from "aws-lambda";
import { jsonAnswer, type Handler, type HandlerResult } from "./answer";
import { loadConfig, type HandlerConfig } from "./config";
import { DeviceManager } from "./device";
import type { EgressPolicy } from "./egress-proxy";
import { ServiceError } from "./errors";
import { systemResolver, type Resolver } from "./fetch-acsm";
import { Loans } from "./loans";
import { createLogger, type LogSink } from "./log";
import { createRouter } from "./routes";
import { s3Stores, type HandlerStores } from "./stores";
import type { Services } from "./use-cases/context";
import { Health } from "./use-cases/health";
import { Kindle, type KindleSeams } from "./kindle/deliver";

export type { Handler, HandlerContext, HandlerResult } from "./answer";

/** What a handler is made of; {@link createHandler} fills in the production defaults. */
export interface HandlerOptions {
  readonly config: HandlerConfig;
  /** @default the S3 stores on config's buckets: s3Stores(s3, config) from ./stores */
  readonly stores?: HandlerStores;
  /**
   * How a missing converter tool is explained: the `error` of every ConverterMissing answer — a
   * conversion's or a loan return's (a tool absent; the body keeps `tool`) and health's 500 (a
   * checked tool absent or not running; `"status": "unhealthy"`). `knock serve` passes its tools hint.
   * @default the image's message (ToolMissingError's) for conversions and returns; health's own
   * "The converter tool … is missing or does not run."
   */
  readonly missingToolMessage?: (tool: string) => string;
  /** Root for the per-invocation work directories and the device cache. @default os.tmpdir() (/tmp on Lambda) */
  readonly tmpRoot?: string;
  readonly logSink?: LogSink;
  /** @default createS3Client(config) */
  readonly s3?: S3Client;
}

/** Test seams: what the network and the tools look like. Production never passes them. */
export interface HandlerSeams {
  /** DNS for `acsm_url` (and the converter's egress unless `egress` names its own). @default the system resolver */
  readonly resolver: Resolver;
  /** Which addresses `acsm_url` may reach. @default public unicast only */
  readonly isAllowedAddress: (address: string) => boolean;
  /** Where the converter tools may connect (through the egress proxy). @default `resolver` and public unicast addresses only */
  readonly egress: Partial<EgressPolicy>;
  /** Variables added to the tools' minimal environment (tests: the stand-in's settings). @default none */
  readonly toolEnv: () => Readonly<Record<string, string>>;
  /** Extra CA for `acsm_url` (tests' self-signed server). */
  readonly ca: string | Buffer;
  readonly now: () => Date;
  /** How the pause between retries of a transient distributor failure is waited. @default setTimeout */
  readonly retrySleep: (ms: number) => Promise<void>;
  /** How Send to Kindle reaches its mailer (knock serve's SMTP URL, tests' CA). @default the stack's SSM parameter */
  readonly kindle: Partial<KindleSeams>;
}

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

const router = createRouter();

/**
 * Creates a handler with its own collaborators: one container's device cache, stores and health
 * cache. Lambda uses the module's {@link handler}; tests create several to model separate containers.
 */
export function createHandler(options: HandlerOptions, seams: Partial<HandlerSeams> = {}): Handler {
  const { config } = options;
  const stores = options.stores ?? s3Stores(options.s3 ?? createS3Client(config), config);
  const tmpRoot = options.tmpRoot ?? tmpdir();
  const resolver = seams.resolver ?? systemResolver;
  const services: Services = {
    config,
    devices: new DeviceManager(stores.device, config.toolsDir, join(tmpRoot, "knock-devices")),
    output: stores.output,
    loans: new Loans(stores.loans),
    health: new Health(config, options.missingToolMessage),
    tools: {
      policy: { resolver: seams.egress?.resolver ?? resolver, isAllowedAddress: seams.egress?.isAllowedAddress, route: seams.egress?.route },
      toolEnv: seams.toolEnv,
      missingToolMessage: options.missingToolMessage,
      retrySleep: seams.retrySleep,
    },
    acsmUrl: { resolver, isAllowedAddress: seams.isAllowedAddress, ca: seams.ca },
    now: seams.now ?? (() => new Date()),
    ...(config.kindle === undefined ? {} : { kindle: new Kindle(config.kindle, seams.kindle) }),
  };

  return async function handle(event, context) {
    const requestId = (context.awsRequestId || "unknown").replace(/[^A-Za-z0-9-]/g, "_");
    const log = createLogger(requestId, options.logSink);
    const margin = safetyMarginMs(context.getRemainingTimeInMillis());
    let workDir: Promise<string> | undefined;
    try {
      return await router(services, {
        event,
        requestId,
        log,
        started: Date.now(),
        timeLeftMs: () => context.getRemainingTimeInMillis() - margin,
        workDir: () => (workDir ??= mkdir(tmpRoot, { recursive: true }).then(() => mkdtemp(join(tmpRoot, "knock-req-")))),
      });
    } catch (err) {
      if (err instanceof ServiceError) {
        log.warn("request failed", { status: err.statusCode, error_type: err.errorType, error: err.message });
        // The error's own headers: a 401's challenge (RFC 7235 §3.1), a 405's Allow (RFC 9110
        // §15.5.6), a 415's Accept-Post.
        const answer = jsonAnswer(err.statusCode, err.toBody(requestId));
        Object.assign(answer.headers, err.headers);
        return answer;
      }
      // Unexpected: details go to the log only; the caller gets a generic message.
      const e = err instanceof Error ? err : new Error(String(err));
      log.error("unexpected failure", { error_name: e.name, error: e.message, stack: e.stack });
      return jsonAnswer(500, {
        error: "Internal error while converting; see the function's logs for this request_id.",
        error_type: "InternalError",
        request_id: requestId,
      });
    } finally {
      const dir = await workDir?.catch(() => undefined);
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }
  };
}

/**
 * A Lambda entry point: `build` makes the handler from the environment's configuration on the first
 * invocation, and it is reused while the container stays warm. A configuration that cannot be read
 * (or a handler that cannot be built) is answered as the service's 500 Misconfigured, and tried
 * again on the next invocation.
 */
export function entryPoint(build: (config: HandlerConfig) => Handler): (event: unknown, context: Context) => Promise<HandlerResult> {
  let built: Handler | undefined;
  return async (event, context) => {
    if (built === undefined) {
      try {
        built = build(loadConfig());
      } catch (err) {
        // A deployment mistake, not the caller's: answer in the service's error shape (never a
        // runtime stack trace).
        const requestId = context.awsRequestId || "unknown";
        const message = err instanceof Error ? err.message : String(err);
        createLogger(requestId).error("function misconfigured", { error: message });
        return jsonAnswer(500, { error: `The function is misconfigured: ${message}`, error_type: "Misconfigured", request_id: requestId });
      }
    }
    return built(event, context);
  };
}

/** The Lambda entry point (`handler.handler`, lambda/Dockerfile's CMD): the production handler. */
export const handler = entryPoint((config) => createHandler({ config }));
