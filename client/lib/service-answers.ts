import type { ConversionAnswer } from "../../lambda/src/public";
import type { Answer } from "./http";
import { CliError, serviceFailure, type ServiceErrorBody } from "./failures";

/** The IAM policy statement a caller needs (docs/api.md, "Signing requests"). */
export function invokePolicyStatement(functionArn: string | undefined): string {
  return JSON.stringify({
    Effect: "Allow",
    Action: ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"],
    Resource: functionArn ?? "<lambda_function_arn stack output>",
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

/** The request id Lambda puts on every Function URL response. */
export function requestIdOf(answer: Answer): string | undefined {
  const id = answer.headers["x-amzn-requestid"];
  return typeof id === "string" ? id : undefined;
}

/**
 * Explains a 403 that did not come from the handler but from Lambda's IAM check in front of it:
 * the answer is `{"Message": "..."}` (or `message`), not the service's `{error, error_type}`.
 */
function iamFailure(answer: Answer, body: Record<string, unknown> | undefined, functionArn: string | undefined): CliError {
  const said = String(body?.Message ?? body?.message ?? answer.body.toString("utf8").slice(0, 200)).trim();
  const errorType = typeof answer.headers["x-amzn-errortype"] === "string" ? answer.headers["x-amzn-errortype"].split(":")[0] : undefined;
  const requestId = requestIdOf(answer);
  const idNote = requestId ? ` (request id ${requestId})` : "";
  if (/expired/i.test(said) || /ExpiredToken/i.test(errorType ?? "")) {
    return new CliError("credentials-expired", `AWS refused the request: ${said}${idNote}.\n  Refresh your credentials (e.g. \`aws sso login\`) and retry.`, {
      errorType,
      requestId,
      status: 403,
    });
  }
  if (/signature/i.test(said) || /InvalidSignature/i.test(errorType ?? "")) {
    return new CliError(
      "access-denied",
      `AWS rejected the request's signature: ${said}${idNote}.\n  Check the system clock and that --region matches the function's region.`,
      { errorType, requestId, status: 403 },
    );
  }
  return new CliError(
    "access-denied",
    `AWS denied access to the function URL (403 ${said || "Forbidden"})${idNote}.\n` +
      "  Your IAM identity needs both lambda:InvokeFunctionUrl and lambda:InvokeFunction on the function:\n" +
      `  ${invokePolicyStatement(functionArn)}`,
    { errorType, requestId, status: 403 },
  );
}

/**
 * Checks an answer and returns its JSON body, or throws the failure it stands for: Lambda's IAM
 * refusal, or the service's own error answer.
 */
export function expectOk(answer: Answer, functionArn?: string): Record<string, unknown> {
  const parsed = parseJson(answer.body);
  const body = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  if (answer.status === 403 && (body === undefined || body.error_type === undefined)) throw iamFailure(answer, body, functionArn);
  if (answer.status < 200 || answer.status >= 300 || body === undefined) {
    const failure = serviceFailure(answer.status, body as ServiceErrorBody | undefined, answer.body.toString("utf8"));
    if (failure.details.requestId === undefined && requestIdOf(answer)) {
      return rethrowWithId(failure, requestIdOf(answer)!);
    }
    throw failure;
  }
  return body;
}

function rethrowWithId(failure: CliError, requestId: string): never {
  throw new CliError(failure.kind, `${failure.message}\n  request id ${requestId}`, { ...failure.details, requestId });
}

/**
 * Reads a conversion answer (the contract's {@link ConversionAnswer}), checking the fields the
 * client relies on.
 */
export function conversionAnswer(body: Record<string, unknown>): ConversionAnswer {
  const files = body.output_files;
  if (!Array.isArray(files) || files.length === 0) {
    throw new CliError("service", "The service answered 200 without output_files; is the URL really a knock-lambda service?");
  }
  for (const f of files as Record<string, unknown>[]) {
    if (typeof f.filename !== "string" || typeof f.download_url !== "string" || typeof f.size_bytes !== "number") {
      throw new CliError("service", "The service's answer lacks filename, download_url or size_bytes; is the URL really a knock-lambda service?");
    }
  }
  return body as unknown as ConversionAnswer;
}
