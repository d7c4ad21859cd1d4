import { join } from "node:path";
import { runTool, ToolNotRunnableError, type ToolRun } from "./run-tool";
import { BadRequestError, DeviceLimitError, NetworkFailureError, ServiceError, ToolMissingError, ToolTimeoutError, UpstreamError } from "./errors";

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
    return new UpstreamError(`The distributor's ADEPT server refused the request: ${err.toolMessage}.`, {
      adept_error: err.toolMessage,
    });
  }
  if (code === "0x500b" || code === "0x5011") {
    // The tool says only "Couldn't connect" or "HTTP Error code 502" (the proxy's answer); the
    // handler's egress proxy knows which host did not resolve or connect (handler.ts, withEgress).
    return new NetworkFailureError(`Could not talk to the distributor's server: ${err.toolMessage}.`);
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
