import { join } from "node:path";
import { runTool, ToolNotRunnableError, type ToolRun } from "./run-tool";
import { ADEPT_SERVER_ERRORS, httpFailure, httpStatusOf, isTransientFailure, serverErrorCode } from "./adept-errors";
import { BadRequestError, DeviceLimitError, DistributorFailureError, NetworkFailureError, ServiceError, ToolMissingError, ToolTimeoutError, UpstreamError } from "./errors";

/** A libgourou failure as the tools report it: `Exception code : 0x…` / `Message        : …` on stdout. */
export class LibgourouError extends Error {
  constructor(
    readonly tool: string,
    /** Exit status of the tool. */
    readonly exitCode: number | null,
    /** Exception code, e.g. `0x1003`, when the tool printed one. */
    readonly exceptionCode: string | undefined,
    /** The tool's message (for 0x1003 the server's error code, e.g. `E_ADEPT_REQUEST_EXPIRED`). */
    readonly toolMessage: string,
  ) {
    super(`${tool} failed (exit ${exitCode}${exceptionCode ? `, exception ${exceptionCode}` : ""}): ${toolMessage}`);
    this.name = "LibgourouError";
  }

  /** How many times the tool was run before giving up with this failure (set by the retrying caller). */
  attempts = 1;

  /** True when a second run may succeed (distributor HTTP 429/5xx, a reset connection; see adept-errors.ts). */
  get transient(): boolean {
    return isTransientFailure(this);
  }

  /** True when the ADEPT server answered with the given error code (e.g. `E_ADEPT_REQUEST_EXPIRED`). */
  isServerError(code: string): boolean {
    return this.exceptionCode === "0x1003" && this.toolMessage.includes(code);
  }
}

/** Extracts the exception code and message from a tool's output, if it printed them. */
export function parseToolFailure(output: string): { exceptionCode: string | undefined; message: string } {
  const code = /Exception code\s*:\s*(0x[0-9a-fA-F]+)/.exec(output)?.[1]?.toLowerCase();
  const message = /^Message\s*:\s*(.*)$/m.exec(output)?.[1]?.trim();
  if (message !== undefined) return { exceptionCode: code, message };
  // Other failures (e.g. missing device files) are plain "Error : …" lines.
  const errorLines = output
    .split("\n")
    .filter((l) => /^Error\s*:/.test(l))
    .map((l) => l.replace(/^Error\s*:\s*/, "").trim());
  if (errorLines.length) return { exceptionCode: code, message: errorLines.join("; ") };
  const lastLines = output.trim().split("\n").slice(-3).join(" | ");
  return { exceptionCode: code, message: lastLines || "no output" };
}

/** Runs one of the tools and turns every way it can fail into a typed error. */
export async function runLibgourou(
  toolsDir: string,
  tool: "adept_activate" | "acsmdownloader" | "adept_remove" | "adept_loan_mgt",
  args: readonly string[],
  timeoutMs: number,
  /** The tool's whole environment (see run-tool.ts toolEnvironment). */
  env?: NodeJS.ProcessEnv,
): Promise<ToolRun> {
  let run: ToolRun;
  try {
    run = await runTool(join(toolsDir, tool), args, { timeoutMs, env });
  } catch (err) {
    if (err instanceof ToolNotRunnableError) throw new ToolMissingError(tool);
    throw err;
  }
  if (run.timedOut) throw new ToolTimeoutError(tool, timeoutMs);
  if (run.outputOverflow) {
    throw new LibgourouError(tool, run.exitCode, undefined, "produced unbounded output and was stopped");
  }
  if (run.exitCode !== 0) {
    const { exceptionCode, message } = parseToolFailure(run.output);
    throw new LibgourouError(tool, run.exitCode, exceptionCode, message);
  }
  return run;
}

/**
 * Maps a converter failure to the answer the caller gets. `E_ADEPT_REQUEST_EXPIRED` reaches this
 * only after the pipeline retried with a fresh device, so it is then a plain upstream failure.
 */
export function mapLibgourouError(err: LibgourouError): ServiceError {
  const code = err.exceptionCode;
  if (code === "0x1003") {
    if (err.isServerError("E_GOOGLE_DEVICE_LIMIT_REACHED")) return new DeviceLimitError();
    const serverCode = serverErrorCode(err.toolMessage);
    const known = serverCode === undefined ? undefined : ADEPT_SERVER_ERRORS[serverCode];
    if (known) return new DistributorFailureError(known, { adept_error: serverCode });
    return new UpstreamError(`The distributor's ADEPT server refused the request: ${err.toolMessage}.`, {
      adept_error: err.toolMessage,
    });
  }
  if (code === "0x5011") {
    const status = httpStatusOf(err.toolMessage);
    const known = status === undefined ? undefined : httpFailure(status);
    // 5xx stays a NetworkFailureError: through the egress proxy "HTTP Error code 502" is also the
    // proxy's own answer for a host it could not reach, which the handler names (egress.ts, withEgress).
    if (known && known.errorType !== "UpstreamError") return new DistributorFailureError(known, { distributor_status: status, attempts: err.attempts });
    if (known) return new NetworkFailureError(`Could not talk to the distributor's server: ${err.toolMessage}.`, { distributor_status: status, attempts: err.attempts });
  }
  if (code === "0x500b" || code === "0x5011") {
    // The tool says only "Couldn't connect" or "HTTP Error code 502" (the proxy's answer); the
    // handler's egress proxy knows which host did not resolve or connect (handler.ts, withEgress).
    return new NetworkFailureError(`Could not talk to the distributor's server: ${err.toolMessage}.`, err.attempts > 1 ? { attempts: err.attempts } : {});
  }
  // The caller's input errors (libgourou_common.h, FULFILL_ERROR): 0x1101 invalid ACSM, 0x1102 no
  // <hmac>, 0x1104 no <operatorURL>, 0x1105 the "ACSM" is a server <error> document.
  // validateAcsm refuses all of these before the tool runs; this keeps them 400 if the two disagree.
  if (code === "0x1101" || code === "0x1102" || code === "0x1104" || code === "0x1105") {
    return new BadRequestError(`The converter rejected the ACSM file: ${err.toolMessage}.`);
  }
  // 0x1000 (src/libgourou.cpp, DRMProcessor's constructor): activation.xml was made for another
  // device.xml. The stored device is inconsistent, which no request can fix: the service's fault.
  if (code === "0x1000") {
    return new ServiceError(
      500,
      "DeviceUnavailable",
      `The stored Adobe device is inconsistent (${err.toolMessage}); delete the stored device from the device bucket so that the next request activates a new one.`,
    );
  }
  return new ServiceError(
    500,
    "ConversionFailed",
    `${err.tool} failed unexpectedly${code ? ` (exception ${code})` : ""}: ${err.toolMessage}.`,
  );
}
