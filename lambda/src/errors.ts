import { ACSM_CONTENT_TYPES, JSON_CONTENT_TYPE, type ErrorBody, type RouteSpec, instead } from "./contract";

/**
 * The small set of failures the handler answers with something other than 500. Each class carries
 * its HTTP status, a message meant for the caller (it says what was wrong and what is allowed), the
 * fields of its own and its response headers: {@link ServiceError.toBody} and
 * {@link ServiceError.headers} are the whole answer, so the handler maps every one the same way.
 * Anything that is not a {@link ServiceError} is treated as unexpected (500, message withheld).
 */
export class ServiceError extends Error {
  /** HTTP status code the handler answers with. */
  readonly statusCode: number;
  /** Stable machine-readable name, returned as `error_type`. */
  readonly errorType: string;
  /** Extra fields merged into the JSON error body (never secrets or stack traces). */
  readonly details: Readonly<Record<string, unknown>>;

  /** `options.cause`: the failure this one explains (logged, never answered). */
  constructor(statusCode: number, errorType: string, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = errorType;
    this.statusCode = statusCode;
    this.errorType = errorType;
    this.details = details;
  }

  /**
   * Response headers that belong to this answer (a 401's challenge, a 405's `Allow`, …), so the
   * handler adds every error's headers the same way instead of special-casing classes.
   */
  get headers(): Readonly<Record<string, string>> {
    return {};
  }

  /**
   * The JSON body of the answer: the message and the error's own fields, with file paths removed
   * ({@link redactPaths}: tools name the files they fail on, and the function's file layout is
   * nobody else's business).
   */
  toBody(requestId: string): ErrorBody {
    return { error: redactPaths(this.message), error_type: this.errorType, request_id: requestId, ...redactDetails(this.details) };
  }
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

/** {@link redactPaths} on every string field. */
export function redactDetails(details: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).map(([k, v]) => [k, typeof v === "string" ? redactPaths(v) : v]));
}

/** 400: the request is not something the service can convert. */
export class BadRequestError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(400, "BadRequest", message, details);
  }
}

/** 400: `acsm_url` was refused or could not be fetched within the limits. */
export class AcsmUrlError extends ServiceError {
  constructor(message: string) {
    super(400, "InvalidAcsmUrl", message);
  }
}

/**
 * 401: the service runs in token mode (`function_url_auth = TOKEN`) and the request's token is
 * missing or wrong. RFC 7235 §3.1: a 401 carries a `WWW-Authenticate` challenge (its {@link headers}).
 */
export class UnauthorizedError extends ServiceError {
  constructor(message: string) {
    super(401, "Unauthorized", message);
  }

  override get headers(): Readonly<Record<string, string>> {
    return { "www-authenticate": 'Bearer realm="knock-lambda"' };
  }
}

/**
 * 405: the path exists but not with this method. Built from the routes on the path (the contract's
 * table): their methods are the `Allow` header RFC 9110 §15.5.6 requires on a 405 (its
 * {@link headers}), and what they do is what the message offers instead, e.g. "Method PUT is not
 * allowed on /loans/<id>: use DELETE to forget the loan.".
 */
export class MethodNotAllowedError extends ServiceError {
  readonly allow: readonly string[];

  /** `path`: the routes' path as the table writes it (`/loans/<id>`); `routes`: every route on it. */
  constructor(method: string, path: string, routes: readonly RouteSpec[]) {
    super(405, "MethodNotAllowed", `Method ${method} is not allowed on ${path}: ${instead(routes)}.`);
    this.allow = [...new Set(routes.map((r) => r.method))];
  }

  override get headers(): Readonly<Record<string, string>> {
    return { allow: this.allow.join(", ") };
  }

  /**
   * Not path-redacted: the message is made of the route table's words and the request's own method
   * only, and a route's path (`/loans/<id>/return`) would otherwise read as a file path.
   */
  override toBody(requestId: string): ErrorBody {
    return { error: this.message, error_type: this.errorType, request_id: requestId };
  }
}

/** 413: the request body is larger than any ACSM file. */
export class PayloadTooLargeError extends ServiceError {
  constructor(sizeBytes: number, limitBytes: number) {
    super(
      413,
      "PayloadTooLarge",
      `Request body is ${sizeBytes} bytes; the limit is ${limitBytes} bytes (ACSM files are a few KB).`,
      { limit_bytes: limitBytes },
    );
  }
}

/**
 * 415: the body's Content-Type is none the service reads. Above all this refuses the three types a
 * web page may send to another site without the browser asking it first (Fetch standard, "CORS-
 * safelisted request-header": `application/x-www-form-urlencoded`, `multipart/form-data`,
 * `text/plain`) — which is also what plain `curl --data-binary @book.acsm` sends, hence the hint.
 * `Accept-Post` (W3C Linked Data Platform 1.0 §7.1) lists what would have been accepted.
 */
export class UnsupportedMediaTypeError extends ServiceError {
  constructor(contentType: string) {
    super(
      415,
      "UnsupportedMediaType",
      `Content-Type ${contentType} is not accepted for a conversion. Send the ACSM file as ${ACSM_CONTENT_TYPES[0]} ` +
        `(or ${ACSM_CONTENT_TYPES.slice(1).join(", ")}) — with curl: -H 'Content-Type: ${ACSM_CONTENT_TYPES[0]}' --data-binary @book.acsm — ` +
        `or JSON {"acsm_content": "<xml…>"} or {"acsm_url": "https://…"} as ${JSON_CONTENT_TYPE}.`,
      { content_type: contentType, accepted_content_types: [...ACSM_CONTENT_TYPES, JSON_CONTENT_TYPE] },
    );
  }

  override get headers(): Readonly<Record<string, string>> {
    return { "accept-post": [...ACSM_CONTENT_TYPES, JSON_CONTENT_TYPE].join(", ") };
  }
}

/**
 * 403: a browser sent this state-changing request from a page that is not the service's own
 * (another site, another port, a sandboxed frame or file). Such a page may make the user's browser
 * send requests but must not make the service act on them.
 */
export class CrossOriginRequestError extends ServiceError {
  constructor(message: string, details: Record<string, unknown>) {
    super(403, "CrossOriginRequest", message, details);
  }
}

/** 410: the fulfillment token expired; only the shop can issue a new one. */
export class AcsmExpiredError extends ServiceError {
  constructor(expiration: string) {
    super(
      410,
      "AcsmExpired",
      `This ACSM expired at ${expiration}. Download a fresh ACSM from the shop or library and try again.`,
      { expired_at: expiration },
    );
  }
}

/** 409: Adobe refuses to fulfil for this device because the account's device limit is reached. */
export class DeviceLimitError extends ServiceError {
  constructor() {
    super(
      409,
      "DeviceLimitReached",
      "The distributor refused the download because too many devices have already been used with this " +
        "book or account (E_GOOGLE_DEVICE_LIMIT_REACHED). The service uses one stored Adobe device; " +
        "the limit is counted by the distributor, so retrying will not help. Ask the shop or library to " +
        "reset the device count or issue a new loan.",
      { adept_error: "E_GOOGLE_DEVICE_LIMIT_REACHED" },
    );
  }
}

/**
 * A distributor or Adobe failure the table in adept-errors.ts names: its status, `error_type` and
 * message (docs/api.md lists them).
 */
export class DistributorFailureError extends ServiceError {
  constructor(row: { readonly statusCode: number; readonly errorType: string; readonly message: string }, details: Record<string, unknown> = {}) {
    super(row.statusCode, row.errorType, row.message, details);
  }
}

/** 502: the distributor or Adobe's server failed or could not be reached. */
export class UpstreamError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(502, "UpstreamError", message, details, options);
  }
}

/**
 * 502 because a converter tool could not talk to a server at all (libgourou 0x500b, or 0x5011 for the
 * egress proxy's own 502). The tool cannot say which host; the handler asks its egress proxy and
 * answers {@link UnreachableHostError} when the proxy knows.
 */
export class NetworkFailureError extends UpstreamError {}

/**
 * True when the handler runs on AWS Lambda, which sets AWS_LAMBDA_FUNCTION_NAME in every function's
 * environment (Lambda developer guide, "Defined runtime environment variables"); `knock serve` runs
 * the same handler on the user's own computer without it. Messages about the network use it to name
 * the machine that has the problem.
 */
export function runsOnLambda(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.AWS_LAMBDA_FUNCTION_NAME ?? "").trim() !== "";
}

/** How the egress proxy failed to reach a destination (egress-proxy.ts records each). */
export type UnreachableReason = "does not resolve" | "network unreachable" | "refused the connection" | "did not answer";

/** Adobe's activation server (libgourou's ACS_SERVER), which every new device is activated with. */
const ADOBE_ACTIVATION_HOST = "adeactivate.adobe.com";

/**
 * 502: a converter tool failed because the egress proxy could not reach a host: its name did not
 * resolve, or no connection to it could be made. Named, so the caller learns which host and that the
 * problem is the network where the converter runs, not the ACSM or a server that answered.
 */
export class UnreachableHostError extends UpstreamError {
  /** `options.env`: where to tell Lambda from `knock serve` (process.env); `options.cause`: the tool's own failure. */
  constructor(host: string, reason: UnreachableReason, options: { readonly env?: NodeJS.ProcessEnv; readonly cause?: unknown } = {}) {
    const onLambda = runsOnLambda(options.env);
    const what = host === ADOBE_ACTIVATION_HOST ? `${host} (Adobe's activation server)` : host;
    const where = onLambda ? "The service" : "This machine";
    const message =
      reason === "does not resolve" || reason === "network unreachable"
        ? `${where} has no route to ${what}: ${reason === "does not resolve" ? "the name does not resolve" : "the network is unreachable"}. ` +
          (onLambda
            ? "Try again later; if it keeps failing, the function's network has no internet access."
            : "Check this machine's internet connection and DNS, then try again.")
        : `${what} ${reason === "refused the connection" ? "refused the connection" : "did not answer the connection"}: its server may be down. Try again later.`;
    super(message, { unreachable_host: host, unreachable_reason: reason }, { cause: options.cause });
  }
}

/** 504: a converter tool ran out of the invocation's time and was stopped. */
export class ToolTimeoutError extends ServiceError {
  constructor(tool: string, limitMs: number) {
    super(
      504,
      "ConversionTimeout",
      `${tool} did not finish within ${limitMs} ms (the time left in this invocation) and was stopped.`,
    );
  }
}

/**
 * 500 with a stated cause: a converter tool is missing (the image lacks it, or `knock serve` was
 * started without its tools folder). The default message is the cloud's; the handler words it as
 * its `missingToolMessage` option says (`knock serve`: the tools hint), with `tool` in the body.
 */
export class ToolMissingError extends ServiceError {
  readonly tool: string;

  constructor(tool: string, message = imageLacksTool(tool), options?: ErrorOptions) {
    super(500, "ConverterMissing", message, { tool }, options);
    this.tool = tool;
  }
}

/** The cloud's explanation of a missing tool: the image build must install it. */
export function imageLacksTool(tool: string): string {
  return `The converter tool ${tool} is missing from the function's image: the image build must install it (lambda/Dockerfile); fix it and deploy again with pulumi up.`;
}

/**
 * 500 from health (`"status": "unhealthy"`): a converter tool is missing or does not run, so no
 * conversion or return could succeed. The same `error_type` as {@link ToolMissingError}.
 */
export class ConverterUnhealthyError extends ServiceError {
  constructor(tool: string, message = `The converter tool ${tool} is missing or does not run.`) {
    super(500, "ConverterMissing", message, { status: "unhealthy" });
  }
}

/** Files people send instead of the ACSM, as {@link otherFileKind} in acsm.ts tells them. */
export type OtherFileKind = "PDF" | "EPUB" | "zip" | "HTML";

const OTHER_FILE: Readonly<Record<OtherFileKind, string>> = {
  PDF: "This is a PDF, not an ACSM file",
  EPUB: "This is an EPUB, not an ACSM file",
  zip: "This is a zip archive, not an ACSM file",
  HTML: "This is a web page (HTML), not an ACSM file: the download may have saved the shop's page instead of the file",
};

/**
 * 400 BadRequest: the body is a book, an archive or a web page, not the ACSM. Said in those words,
 * because "not well-formed XML" means nothing to someone who picked the PDF from their downloads;
 * `detected` names the kind for clients that word it themselves (the page, knock).
 */
export class NotAnAcsmError extends BadRequestError {
  constructor(kind: OtherFileKind) {
    super(`${OTHER_FILE[kind]}. Send the .acsm file the shop or library gave you: a small file (a few KB) that the service downloads the book with.`, {
      detected: kind,
    });
  }
}

/** 400: the token (or a link or redirect its server returned) points the converter at a non-public address. */
export class ForbiddenDestinationError extends ServiceError {
  constructor(host: string, reason: string, options?: ErrorOptions) {
    super(
      400,
      "ForbiddenDestination",
      `The ACSM's server, or a link or redirect it returned, points to ${host}, which ${reason}; the converter only connects to public hosts.`,
      { refused_host: host },
      options,
    );
  }
}

/**
 * 404: the path names nothing the service answers. `routes` (the contract's `routeList`) is a field
 * of its own because the handler redacts anything that looks like a file path (two or more `/`
 * segments) from messages.
 */
export class NotFoundError extends ServiceError {
  constructor(routes: readonly string[]) {
    super(404, "NotFound", "The service has nothing at this path; `routes` lists what it answers.", { routes });
  }
}

/** 404: no stored loan has this id. */
export class LoanNotFoundError extends ServiceError {
  constructor(id: string) {
    super(404, "NoSuchLoan", `No stored loan has the id ${id} (it may have been returned or forgotten already); GET /loans lists them.`, { loan_id: id });
  }
}

/** 409: another request is returning this loan right now. */
export class LoanReturnInProgressError extends ServiceError {
  constructor(id: string) {
    super(409, "ReturnInProgress", `Loan ${id} is being returned by another request; list the loans again in a minute to see the outcome.`, { loan_id: id });
  }
}

/** 409: the library's server answered the return with an ADEPT error (libgourou 0x1003). */
export class LoanReturnRefusedError extends ServiceError {
  /** `serverError`: the ADEPT error the server answered, or with `httpStatus` the tool's "HTTP Error code N". */
  constructor(id: string, serverError: string, httpStatus?: number) {
    super(
      409,
      "LoanReturnRefused",
      `The library's server refused to return loan ${id}: ${serverError}. It may already be returned or ended. The loan stays ` +
        `in the list; once the library no longer shows it, forget it (DELETE on the loan, or \`knock return --forget ${id}\`).`,
      httpStatus === undefined ? { loan_id: id, adept_error: serverError } : { loan_id: id, distributor_status: httpStatus },
    );
  }
}

/** 410: the loan period is over: the library has already taken the book back. */
export class LoanExpiredError extends ServiceError {
  constructor(id: string, expiredAt: string) {
    super(
      410,
      "LoanExpired",
      `Loan ${id} ended at ${expiredAt}: the library has already taken the book back, there is nothing to return. Forget it (DELETE on the loan, or \`knock return --forget ${id}\`).`,
      { loan_id: id, expired_at: expiredAt },
    );
  }
}

/** 422: the stored loan token cannot be read, so the converter could not return it either. */
export class InvalidLoanTokenError extends ServiceError {
  constructor(id: string, reason: string) {
    super(422, "InvalidLoanToken", `The stored token of loan ${id} is not valid (${reason}); it cannot be returned. Forget it (DELETE on the loan, or \`knock return --forget ${id}\`).`, {
      loan_id: id,
    });
  }
}

/** 500: adept_loan_mgt ended without confirming the return (it exits 0 for some failures). */
export class LoanReturnFailedError extends ServiceError {
  constructor(id: string, toolSaid: string) {
    super(500, "LoanReturnFailed", `adept_loan_mgt did not confirm the return of loan ${id}: ${toolSaid}. The loan is kept; retry later.`, { loan_id: id });
  }
}
