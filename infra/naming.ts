/**
 * Physical names for the few resources whose names are part of the contract (the ECR repository,
 * the CodeBuild project, the function and its log group). Everything else is auto-named by Pulumi,
 * because S3 bucket names are global and two people deploying `knock-lambda`/`dev` must not collide.
 */

/** ECR repository name: `<project>-<stack>`, lower-cased, `_` → `-` (ECR accepts lower case only). */
export function repositoryName(project: string, stack: string): string {
  return `${project}-${stack}`.toLowerCase().replace(/_/g, "-").replace(/[^a-z0-9._/-]/g, "-").slice(0, 256);
}

/** CodeBuild project name: `knock-lambda-build-<stack>` (letters, digits, `-`, `_`; at most 255). */
export function buildProjectName(stack: string): string {
  return `knock-lambda-build-${stack}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 255);
}

/** The log group CodeBuild writes a project's build logs to unless told otherwise. */
export function buildLogGroupName(project: string): string {
  return `/aws/codebuild/${project}`;
}

/**
 * Function name: `<project>-<stack>` with what Lambda rejects replaced, at most 64 characters. Fixed
 * (not auto-named) because its log group `/aws/lambda/<function>` must exist before the function does.
 */
export function functionName(project: string, stack: string): string {
  return `${project}-${stack}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64);
}

/** The log group Lambda writes to for a function of that name. */
export function functionLogGroupName(name: string): string {
  return `/aws/lambda/${name}`;
}
