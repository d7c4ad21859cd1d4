/**
 * The client's failures: each is one or two lines saying what happened and what to do next
 * (clig.dev; `gh` and the AWS CLI print the same way). A stack trace is shown only with `--debug`.
 */

/** Exit status for a failed operation. */
export const EXIT_FAILED = 1;
/** Exit status for a usage error (bad flags or arguments), as `gh` and POSIX utilities use. */
export const EXIT_USAGE = 2;
/** Exit status after Ctrl-C: 128 + SIGINT, what a shell reports for a command killed by it. */
export const EXIT_INTERRUPTED = 130;

/** What kind of failure, so tests and `--json` output can tell them apart without parsing prose. */
export type FailureKind =
  | "usage"
  | "no-service-url"
  | "dns"
  | "network"
  | "credentials"
  | "credentials-expired"
  | "access-denied"
  | "service"
  | "download-expired"
  | "download"
  | "disk-full"
  | "output-folder"
  | "input"
  | "interrupted";

/** A failure the user can act on; `message` is the whole explanation, already worded for them. */
export class CliError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly details: { readonly errorType?: string; readonly requestId?: string; readonly status?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CliError";
  }

  get exitCode(): number {
    if (this.kind === "usage") return EXIT_USAGE;
    if (this.kind === "interrupted") return EXIT_INTERRUPTED;
    return EXIT_FAILED;
  }
}

/** The service's error answer (docs/api.md, "Errors"): `{error, error_type, request_id, …}`. */
export interface ServiceErrorBody {
  readonly error?: unknown;
  readonly error_type?: unknown;
  readonly request_id?: unknown;
  /** UpstreamError: the host the converter could not reach (the message then says what to do). */
  readonly unreachable_host?: unknown;
  /** BadRequest: the kind of file sent instead of an ACSM (PDF, EPUB, zip, HTML); the message says what to send. */
  readonly detected?: unknown;
}

/** What to do next for each of the service's error types (docs/api.md, "Errors"). */
const NEXT_STEP: Record<string, string> = {
  Unauthorized: "Pass the service's access token with --token or KNOCK_TOKEN (`pulumi stack output access_token --show-secrets` prints it).",
  BadRequest: "Check that the file is the .acsm the shop or library gave you.",
  InvalidAcsmUrl: "Download the .acsm yourself and pass the file instead.",
  PayloadTooLarge: "An .acsm file is a few KB; this file is not one.",
  DeviceLimitReached: "Ask the shop or library to reset the device count or to issue a new loan.",
  UpstreamError: "The distributor's or Adobe's server failed; try again later.",
  ConversionTimeout: "The converter ran out of time; try again, or raise lambda_timeout.",
  DeviceUnavailable: "Retry: the next request uses the stored device.",
  Misconfigured: "Fix the deployment (pulumi up) and retry.",
  ConverterMissing: "The service's image lacks its converter tools: fix the image build and deploy again (`pulumi up`).",
  NotFound: "The service does not know this path; if it predates library loans, update it (pulumi up).",
  NoSuchLoan: "`knock loans` lists the loans the service keeps.",
  ReturnInProgress: "Another return of this loan is running; check `knock loans` in a minute.",
  // LoanReturnRefused, LoanExpired and InvalidLoanToken: the service's message already says how to forget the loan.
  LoanReturnFailed: "The loan is kept; try again later.",
};

/**
 * The next step for an error answer, unless its message already says one: a ConverterMissing from
 * `knock serve` names --tools, a current service's names `pulumi up`; an UpstreamError naming the
 * unreachable host says where to look; a BadRequest naming the file sent instead says what to send.
 */
function nextStep(errorType: string | undefined, message: string, body: ServiceErrorBody | undefined): string | undefined {
  if (errorType === undefined) return undefined;
  if (errorType === "ConverterMissing" && /--tools|pulumi up/.test(message)) return undefined;
  if (errorType === "UpstreamError" && typeof body?.unreachable_host === "string") return undefined;
  if (errorType === "BadRequest" && typeof body?.detected === "string") return undefined;
  return NEXT_STEP[errorType];
}

/** Turns a service error answer into one clear failure naming its type, message and request id. */
export function serviceFailure(status: number, body: ServiceErrorBody | undefined, rawText: string): CliError {
  const errorType = typeof body?.error_type === "string" ? body.error_type : undefined;
  const requestId = typeof body?.request_id === "string" ? body.request_id : undefined;
  const message =
    typeof body?.error === "string" ? body.error : rawText.trim() ? rawText.trim().slice(0, 300) : `HTTP ${status} with an empty body`;
  const head = `${errorType ?? `HTTP ${status}`}: ${message}`;
  const tail = [requestId ? `request id ${requestId}` : undefined, nextStep(errorType, message, body)].filter(Boolean).join(". ");
  return new CliError("service", tail ? `${head}\n  ${tail}${/[.!?]$/.test(tail) ? "" : "."}` : head, { errorType, requestId, status });
}
