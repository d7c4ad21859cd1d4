// How the runner names and describes the errors the AWS SDK throws, and which StartBuild error is worth
// retrying.

/** The error's name, else the `Code` the SDK sets on some service errors; `"Error"` when it has neither. */
export function errorName(err: unknown): string {
  if (err && typeof err === "object") {
    const { name, Code } = err as { name?: unknown; Code?: unknown };
    if (typeof name === "string" && name !== "Error") return name;
    if (typeof Code === "string") return Code;
    if (typeof name === "string") return name;
  }
  return "Error";
}

/** The error's message, or the thrown value as text. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** `<name>: <message>`, as every runner line that reports an error prints it. */
export function describeError(err: unknown): string {
  return `${errorName(err)}: ${errorMessage(err)}`;
}

/**
 * Whether a StartBuild error means CodeBuild cannot assume the project's service role *yet*.
 *
 * A freshly created IAM role takes a while to become assumable everywhere; meanwhile StartBuild fails
 * with `InvalidInputException: CodeBuild is not authorized to perform: sts:AssumeRole on
 * arn:aws:iam::…:role/…` (some paths report it as AccessDenied). Only that case is worth retrying;
 * everything else (missing project, no codebuild:StartBuild permission for the caller, account
 * limits) fails the same way on every attempt.
 */
export function isRolePropagationError(err: unknown): boolean {
  const name = errorName(err);
  const retryableName = name === "InvalidInputException" || /^AccessDenied(Exception)?$/.test(name);
  return retryableName && /not authorized to perform:?\s*sts:AssumeRole/i.test(errorMessage(err));
}
