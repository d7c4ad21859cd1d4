// Runs the real entry point exactly as `knock-lambda-build-run` does (`node --import tsx
// infra/build-runner.ts` from the project root), parameters in the environment only, against a fake
// CodeBuild/Logs endpoint reached through the SDK's standard AWS_ENDPOINT_URL. This proves the
// env/endpoint contract, the exit codes and the signal handling of the actual process.

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseRunnerOutput } from "../infra/runner-output";
import { startFakeAws, type FakeAws, type FakeAwsHandler } from "./support/build-runner-fake-aws";

/**
 * A CodeBuild that has no leftover builds and refuses to start one with AccountLimitExceededException
 * and `message` (the JSON-protocol error the fake sends, see build-runner-fake-aws.ts); any other
 * operation goes to `rest`, else fails the test.
 */
function refusingToStart(message: string, rest?: FakeAwsHandler): FakeAwsHandler {
  return (req, count) => {
    if (req.operation === "ListBuildsForProject") return { body: { ids: [] } };
    if (req.operation === "StartBuild") return { error: { type: "AccountLimitExceededException", message } };
    if (rest) return rest(req, count);
    throw new Error(`unexpected ${req.target}`);
  };
}

const ROOT = path.resolve(__dirname, "..");
const PROJECT = "knock-lambda-build-dev";
const BUILD_ID = `${PROJECT}:7f00c0de-0000-4000-8000-000000000001`;
const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

let fake: FakeAws | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await fake?.close();
  fake = undefined;
  child = undefined;
});

/** Starts the runner with a clean environment: dummy credentials, no AWS config files, fast timings. */
function startRunner(endpoint: string, extraEnv: Record<string, string> = {}) {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: ROOT,
    AWS_ACCESS_KEY_ID: "AKIDEXAMPLEFAKE",
    AWS_SECRET_ACCESS_KEY: "fake-secret",
    AWS_CONFIG_FILE: path.join(ROOT, "does-not-exist", "config"),
    AWS_SHARED_CREDENTIALS_FILE: path.join(ROOT, "does-not-exist", "credentials"),
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_REGION: "us-east-2",
    AWS_ENDPOINT_URL: endpoint,
    CODEBUILD_PROJECT_NAME: PROJECT,
    CODEBUILD_RETRY_DELAY_SECONDS: "0",
    BUILD_POLL_INTERVAL_SECONDS: "0.05",
    ...extraEnv,
  };
  const proc = spawn(process.execPath, ["--import", "tsx", "infra/build-runner.ts"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  child = proc;
  let stdout = "";
  let stderr = "";
  proc.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  proc.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const finished = new Promise<Finished>((resolve) => {
    proc.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { proc, finished, stdout: () => stdout };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const inProgress = (phase: string) => ({ builds: [{ id: BUILD_ID, buildStatus: "IN_PROGRESS", currentPhase: phase }] });

describe("build runner process (real entry, fake AWS endpoint)", () => {
  it("retries the role-propagation error, follows the build and ends stdout with the digest (exit 0)", async () => {
    const handler: FakeAwsHandler = (req, count) => {
      switch (req.operation) {
        case "ListBuildsForProject":
          return { body: { ids: [] } };
        case "StartBuild":
          return count < 2
            ? { error: { type: "InvalidInputException", message: "CodeBuild is not authorized to perform: sts:AssumeRole on arn:aws:iam::123456789012:role/codebuild-role-x" } }
            : { body: { build: { id: BUILD_ID, buildStatus: "IN_PROGRESS" } } };
        case "BatchGetBuilds":
          if (count < 2) return { body: inProgress(count === 0 ? "PROVISIONING" : "BUILD") };
          return {
            body: {
              builds: [
                {
                  id: BUILD_ID,
                  buildStatus: "SUCCEEDED",
                  currentPhase: "COMPLETED",
                  startTime: 1_760_000_000,
                  exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }],
                },
              ],
            },
          };
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    };
    fake = await startFakeAws(handler);

    const run = startRunner(fake.url, { BUILD_CONTEXT_SHA256: "c".repeat(64) });
    const result = await run.finished;

    expect(result.stderr).not.toContain("error:");
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines.at(-1)).toBe(DIGEST);
    expect(parseRunnerOutput(result.stdout)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
    expect(lines.filter((l) => l.includes("cannot assume its service role yet"))).toHaveLength(2);
    expect(lines).toContain(`build context sha256: ${"c".repeat(64)}`);
    const starts = fake.calls("StartBuild");
    expect(starts).toHaveLength(3);
    expect(starts[0]?.target).toBe("CodeBuild_20161006.StartBuild");
    expect(starts[0]?.body.projectName).toBe(PROJECT);
    // Requests are SigV4-signed for CodeBuild in the configured region with the env credentials.
    expect(String(starts[0]?.headers.authorization)).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLEFAKE\/\d{8}\/us-east-2\/codebuild\/aws4_request/,
    );
    expect(fake.calls("BatchGetBuilds")[0]?.body.ids).toEqual([BUILD_ID]);
  });

  it("exits 1 on a FAILED build, printing the failing phase and the log tail read from CloudWatch Logs", async () => {
    fake = await startFakeAws((req) => {
      switch (req.operation) {
        case "ListBuildsForProject":
          return { body: { ids: [] } };
        case "StartBuild":
          return { body: { build: { id: BUILD_ID } } };
        case "BatchGetBuilds":
          return {
            body: {
              builds: [
                {
                  id: BUILD_ID,
                  buildStatus: "FAILED",
                  currentPhase: "COMPLETED",
                  logs: { groupName: "/aws/codebuild/knock", streamName: "7f00c0de" },
                  phases: [
                    { phaseType: "BUILD", phaseStatus: "FAILED", contexts: [{ statusCode: "COMMAND_EXECUTION_ERROR", message: "exit status 1" }] },
                  ],
                },
              ],
            },
          };
        case "GetLogEvents":
          return { body: { events: [{ timestamp: 1_760_000_000_000, message: "ERROR: failed to solve: process did not complete\n" }] } };
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    });

    const result = await startRunner(fake.url).finished;

    expect(result.code).toBe(1);
    expect(result.stdout).toContain("failing phase: BUILD FAILED");
    expect(result.stdout).toContain("ERROR: failed to solve: process did not complete");
    expect(result.stderr).toContain(`error: build ${BUILD_ID} ended FAILED in phase BUILD`);
    const logRequest = fake.calls("GetLogEvents")[0];
    expect(logRequest?.target).toBe("Logs_20140328.GetLogEvents");
    expect(logRequest?.body).toMatchObject({ logGroupName: "/aws/codebuild/knock", logStreamName: "7f00c0de", startFromHead: false });
    expect(() => parseRunnerOutput(result.stdout)).toThrow(/does not end with an image digest/);
  });

  it("on SIGTERM sends StopBuild for the running build before exiting with 143", async () => {
    fake = await startFakeAws((req) => {
      switch (req.operation) {
        case "ListBuildsForProject":
          return { body: { ids: [] } };
        case "StartBuild":
          return { body: { build: { id: BUILD_ID } } };
        case "BatchGetBuilds":
          return { body: inProgress("BUILD") };
        case "StopBuild":
          return { body: { build: { id: BUILD_ID, buildStatus: "STOPPED" } } };
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    });

    const run = startRunner(fake.url);
    const server = fake;
    await waitFor(() => run.stdout().includes(`started build ${BUILD_ID}`) && server.calls("BatchGetBuilds").length >= 2, "the build to be followed");
    run.proc.kill("SIGTERM");
    const result = await run.finished;

    // Exiting by the default signal action would give code null / signal SIGTERM.
    expect(result).toMatchObject({ code: 143, signal: null });
    expect(server.calls("StopBuild").map((r) => r.body)).toEqual([{ id: BUILD_ID }]);
    expect(result.stdout).toContain(`StopBuild accepted for ${BUILD_ID}`);
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe(`error: interrupted by SIGTERM; build ${BUILD_ID} was asked to stop`);
  });

  it("explains a zero build quota in one message and exits 1 without retrying (AccountLimitExceededException over the wire)", async () => {
    fake = await startFakeAws(refusingToStart("Cannot have more than 0 builds in queue for the account"));

    const result = await startRunner(fake.url, {
      CODEBUILD_MAX_RETRIES: "5",
      CODEBUILD_COMPUTE_TYPE: "BUILD_GENERAL1_MEDIUM",
      CODEBUILD_ENVIRONMENT_TYPE: "LINUX_CONTAINER",
    }).finished;

    expect(result.code).toBe(1);
    expect(fake.calls("StartBuild")).toHaveLength(1);
    expect(fake.calls("BatchGetProjects")).toHaveLength(0);
    const errors = result.stderr.trimEnd().split("\n");
    expect(errors).toHaveLength(1);
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe(errors[0]);
    expect(errors[0]).toMatch(/^error: CodeBuild will not start any build of knock-lambda-build-dev: AccountLimitExceededException: Cannot have more than 0 builds in queue for the account\./);
    expect(errors[0]).toContain("for Linux/Medium (BUILD_GENERAL1_MEDIUM on LINUX_CONTAINER) is 0 in us-east-2");
    expect(errors[0]).toContain("--service-code codebuild --quota-code L-2DC20C30 --desired-value 2");
    expect(errors[0]).toContain("No build ran and nothing was deployed");
    expect(result.stdout).not.toContain("IAM propagation");
  });

  it("reads the compute type from the project for the quota message when the variables are unset", async () => {
    fake = await startFakeAws(refusingToStart("Cannot have more than 0 builds in queue for the account", (req) => {
      switch (req.operation) {
        case "BatchGetProjects":
          return {
            body: {
              projects: [{ name: PROJECT, environment: { type: "LINUX_CONTAINER", computeType: "BUILD_GENERAL1_LARGE", image: "aws/codebuild/standard:7.0" } }],
              projectsNotFound: [],
            },
          };
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    }));

    const result = await startRunner(fake.url).finished;

    expect(result.code).toBe(1);
    expect(fake.calls("BatchGetProjects").map((r) => r.body)).toEqual([{ names: [PROJECT] }]);
    expect(result.stderr).toContain('"Concurrently running builds for Linux/Large environment"');
    expect(result.stderr).toContain("--quota-code L-4DDC4A99");
  });

  it("says the slots are busy when the queue is full (N > 0) and exits 1 without retrying", async () => {
    fake = await startFakeAws(refusingToStart("Cannot have more than 5 builds in queue for the account"));

    const result = await startRunner(fake.url, { CODEBUILD_COMPUTE_TYPE: "BUILD_GENERAL1_MEDIUM", CODEBUILD_ENVIRONMENT_TYPE: "ARM_CONTAINER" }).finished;

    expect(result.code).toBe(1);
    expect(fake.calls("StartBuild")).toHaveLength(1);
    expect(result.stderr).toMatch(/^error: CodeBuild will not queue another build of knock-lambda-build-dev: AccountLimitExceededException: Cannot have more than 5 builds/);
    expect(result.stderr).toContain("Other builds in this account hold every slot of its concurrent-build quota for ARM/Medium");
    expect(result.stderr).toContain("then run pulumi up again");
    expect(result.stderr).not.toContain("is 0 in");
  });

  it("starts a new build when the first is denied its S3 source in DOWNLOAD_SOURCE, and reports the build that succeeded", async () => {
    const first = `${PROJECT}:7f00c0de-0000-4000-8000-00000000000a`;
    fake = await startFakeAws((req, count) => {
      switch (req.operation) {
        case "ListBuildsForProject":
          return { body: { ids: [] } };
        case "StartBuild":
          return { body: { build: { id: count === 0 ? first : BUILD_ID, buildStatus: "IN_PROGRESS" } } };
        case "BatchGetBuilds": {
          const [id] = req.body.ids as string[];
          if (id === first) {
            return {
              body: {
                builds: [
                  {
                    id: first,
                    buildStatus: "FAILED",
                    currentPhase: "COMPLETED",
                    phases: [
                      { phaseType: "SUBMITTED", phaseStatus: "SUCCEEDED", startTime: 1_760_000_000 },
                      { phaseType: "QUEUED", phaseStatus: "SUCCEEDED" },
                      { phaseType: "PROVISIONING", phaseStatus: "SUCCEEDED" },
                      {
                        phaseType: "DOWNLOAD_SOURCE",
                        phaseStatus: "FAILED",
                        contexts: [
                          { statusCode: "CLIENT_ERROR", message: "AccessDenied: Access Denied status code: 403, request id: 1, host id: 2 for primary source" },
                        ],
                      },
                      { phaseType: "COMPLETED" },
                    ],
                  },
                ],
              },
            };
          }
          return { body: { builds: [{ id: BUILD_ID, buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }] } };
        }
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    });

    const result = await startRunner(fake.url).finished;

    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(fake.calls("StartBuild")).toHaveLength(2);
    expect(result.stdout).toContain(`attempt 1/10: build ${first} was denied access in DOWNLOAD_SOURCE (CLIENT_ERROR: AccessDenied: Access Denied`);
    expect(result.stdout).toContain("(IAM propagation); starting a new build in 0s");
    expect(parseRunnerOutput(result.stdout)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
  });

  it("stops a build an earlier, killed run left IN_PROGRESS before it starts its own", async () => {
    const leftover = `${PROJECT}:7f00c0de-0000-4000-8000-0000000000ff`;
    fake = await startFakeAws((req) => {
      switch (req.operation) {
        case "ListBuildsForProject":
          return { body: { ids: [leftover] } };
        case "StopBuild":
          return { body: { build: { id: leftover, buildStatus: "IN_PROGRESS" } } };
        case "StartBuild":
          return { body: { build: { id: BUILD_ID, buildStatus: "IN_PROGRESS" } } };
        case "BatchGetBuilds": {
          const [id] = req.body.ids as string[];
          return id === leftover
            ? { body: { builds: [{ id: leftover, buildStatus: "IN_PROGRESS", currentPhase: "BUILD", startTime: 1_785_578_400 }] } }
            : { body: { builds: [{ id: BUILD_ID, buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }] } };
        }
        default:
          throw new Error(`unexpected ${req.target}`);
      }
    });

    const result = await startRunner(fake.url).finished;

    expect(result.code).toBe(0);
    expect(fake.calls("ListBuildsForProject").map((r) => r.body)).toEqual([{ projectName: PROJECT, sortOrder: "DESCENDING" }]);
    expect(fake.calls("StopBuild").map((r) => r.body)).toEqual([{ id: leftover }]);
    const order = fake.requests.map((r) => r.operation);
    expect(order.indexOf("StopBuild")).toBeLessThan(order.indexOf("StartBuild"));
    expect(result.stdout).toContain(`stopping build ${leftover} (running since 2026-08-01T10:00:00.000Z)`);
    expect(parseRunnerOutput(result.stdout)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
  });

  it("exits 2 naming the variable when the environment is invalid, without calling AWS", async () => {
    fake = await startFakeAws(() => {
      throw new Error("no request expected");
    });

    const result = await startRunner(fake.url, { CODEBUILD_TIMEOUT_MINUTES: "soon" }).finished;

    expect(result.code).toBe(2);
    expect(result.stdout).toContain('CODEBUILD_TIMEOUT_MINUTES="soon" is not allowed: expected a whole number from 5 to 480 (minutes; default 30; config key codebuild_timeout_minutes)');
    expect(fake.requests).toHaveLength(0);
  });
});
