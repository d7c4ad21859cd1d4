// Behaviour of the build runner's core (runBuild) against mocked CodeBuild / CloudWatch Logs clients,
// with a fake clock and sleep so retries, polling and the timeout run instantly.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import {
  AccountLimitExceededException,
  BatchGetBuildsCommand,
  BatchGetProjectsCommand,
  CodeBuildClient,
  InvalidInputException,
  ListBuildsForProjectCommand,
  ResourceNotFoundException,
  StartBuildCommand,
  StopBuildCommand,
  type Build,
} from "@aws-sdk/client-codebuild";
import { CloudWatchLogsClient, GetLogEventsCommand, ResourceNotFoundException as LogsNotFound } from "@aws-sdk/client-cloudwatch-logs";
import { isRolePropagationError } from "../infra/build-runner/errors";
import { EXIT_CODES } from "../infra/build-runner/exit-codes";
import { formatElapsed } from "../infra/build-runner/follow";
import { parseRunnerEnv, RunnerConfigError, type RunnerOptions } from "../infra/build-runner/options";
import { earlyAccessDenial } from "../infra/build-runner/outcome";
import { concurrentBuildQuota } from "../infra/build-runner/quota";
import { runBuild } from "../infra/build-runner/run";
import { parseRunnerOutput } from "../infra/runner-output";

const BUILD_ID = "knock-lambda-build-dev:0b7d5c3e-1111-4222-8333-944455556666";
const DIGEST = `sha256:${"ab12".repeat(16)}`;
const DEEP_LINK = "https://console.aws.amazon.com/cloudwatch/home?region=us-east-2#logEvent:group=/aws/codebuild/knock;stream=0b7d";
const ROLE_MESSAGE =
  "CodeBuild is not authorized to perform: sts:AssumeRole on arn:aws:iam::123456789012:role/codebuild-role-1a2b3c";

const codebuildMock = mockClient(CodeBuildClient);
const logsMock = mockClient(CloudWatchLogsClient);

const OPTIONS: RunnerOptions = {
  projectName: "knock-lambda-build-dev",
  region: "us-east-2",
  maxAttempts: 10,
  retryDelayMs: 30_000,
  timeoutMs: 30 * 60_000,
  pollIntervalMs: 5_000,
  contextSha256: "f".repeat(64),
};

/** Fake clock + recorded output; sleeping advances the clock. */
function harness(signal?: AbortSignal, onSleep?: (call: number) => void) {
  let clock = 1_000_000;
  const out: string[] = [];
  const err: string[] = [];
  const sleeps: number[] = [];
  const deps = {
    codebuild: new CodeBuildClient({ region: "us-east-2" }),
    logs: new CloudWatchLogsClient({ region: "us-east-2" }),
    now: () => clock,
    sleep: async (ms: number) => {
      // A runaway loop (e.g. a deadline never reached) must fail the test, not hang the worker.
      if (sleeps.length >= 5_000) throw new Error("runBuild slept 5000 times: runaway loop");
      sleeps.push(ms);
      clock += ms;
      onSleep?.(sleeps.length);
    },
    out: (line: string) => out.push(line),
    err: (line: string) => err.push(line),
    ...(signal ? { signal } : {}),
  };
  return { deps, out, err, sleeps, text: () => out.join("\n") };
}

function build(overrides: Partial<Build>): { builds: Build[] } {
  return {
    builds: [{ id: BUILD_ID, buildStatus: "IN_PROGRESS", currentPhase: "PROVISIONING", ...overrides }],
  };
}

const roleNotAssumable = () => new InvalidInputException({ message: ROLE_MESSAGE, $metadata: {} });
// CodeBuild's client models no AccessDeniedException; the SDK raises it as a plain ServiceException with that name.
const accessDenied = (message: string) => Object.assign(new Error(message), { name: "AccessDeniedException" });

beforeEach(() => {
  codebuildMock.reset();
  logsMock.reset();
  codebuildMock.on(StartBuildCommand).resolves({ build: { id: BUILD_ID } });
  codebuildMock.on(StopBuildCommand).resolves({ build: { id: BUILD_ID, buildStatus: "STOPPED" } });
  // A fresh project has no earlier builds for stopLeftoverBuilds to find.
  codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: [] });
});

afterEach(() => {
  codebuildMock.reset();
  logsMock.reset();
});

describe("runBuild: success", () => {
  it("prints the build id once, phase progress with the logs link, and ends stdout with the digest", async () => {
    codebuildMock
      .on(BatchGetBuildsCommand)
      .resolvesOnce(build({ currentPhase: "SUBMITTED" }))
      .resolvesOnce(build({ currentPhase: "PROVISIONING", logs: { deepLink: DEEP_LINK } }))
      .resolvesOnce(build({ currentPhase: "BUILD", logs: { deepLink: DEEP_LINK } }))
      .resolves(
        build({
          buildStatus: "SUCCEEDED",
          currentPhase: "COMPLETED",
          exportedEnvironmentVariables: [
            { name: "OTHER", value: "x" },
            { name: "IMAGE_DIGEST", value: DIGEST },
          ],
        }),
      );
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result).toEqual({ exitCode: 0, buildId: BUILD_ID, digest: DIGEST });
    expect(h.out.filter((l) => l.startsWith("build id:"))).toEqual([`build id: ${BUILD_ID}`]);
    expect(h.out.at(-1)).toBe(DIGEST);
    expect(parseRunnerOutput(`${h.text()}\n`)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
    expect(h.out).toContain("[0m00s] phase SUBMITTED");
    expect(h.out).toContain("[0m05s] phase PROVISIONING");
    expect(h.out).toContain("[0m10s] phase BUILD");
    expect(h.out.filter((l) => l.includes(DEEP_LINK))).toEqual([`[0m05s] logs: ${DEEP_LINK}`]);
    expect(h.out).toContain(`build context sha256: ${"f".repeat(64)}`);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(codebuildMock.commandCalls(StartBuildCommand)[0]?.args[0].input.projectName).toBe("knock-lambda-build-dev");
    expect(codebuildMock.commandCalls(BatchGetBuildsCommand)[0]?.args[0].input.ids).toEqual([BUILD_ID]);
    expect(h.sleeps.every((ms) => ms === 5_000)).toBe(true);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
  });

  it("prints a still-running line about every 30 s while the phase does not change", async () => {
    const polls = Array.from({ length: 14 }, () => build({ currentPhase: "BUILD" }));
    let chain = codebuildMock.on(BatchGetBuildsCommand);
    for (const poll of polls) chain = chain.resolvesOnce(poll);
    chain.resolves(build({ buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }));
    const h = harness();

    await runBuild(OPTIONS, h.deps);

    expect(h.out.filter((l) => l.includes("phase BUILD"))).toEqual([
      "[0m00s] phase BUILD",
      "[0m30s] phase BUILD (still running)",
      "[1m00s] phase BUILD (still running)",
    ]);
  });
});

describe("runBuild: starting while the service role propagates", () => {
  it("retries N role-propagation failures, printing each retry, then follows the build", async () => {
    codebuildMock
      .on(StartBuildCommand)
      .rejectsOnce(roleNotAssumable())
      .rejectsOnce(roleNotAssumable())
      .rejectsOnce(roleNotAssumable())
      .resolves({ build: { id: BUILD_ID } });
    codebuildMock
      .on(BatchGetBuildsCommand)
      .resolves(build({ buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(4);
    const retries = h.out.filter((l) => /cannot assume its service role yet/.test(l));
    expect(retries).toEqual([1, 2, 3].map((n) => expect.stringContaining(`attempt ${n}/10`)));
    expect(retries[0]).toContain("retrying in 30s");
    expect(h.sleeps.slice(0, 3)).toEqual([30_000, 30_000, 30_000]);
    expect(h.out.at(-1)).toBe(DIGEST);
    // Each attempt carries its own idempotency token, so SDK-level retries cannot start two builds.
    const tokens = codebuildMock.commandCalls(StartBuildCommand).map((c) => c.args[0].input.idempotencyToken);
    expect(new Set(tokens).size).toBe(4);
  });

  it("gives up after CODEBUILD_MAX_RETRIES attempts with the count, the last error and what to check", async () => {
    codebuildMock.on(StartBuildCommand).rejects(roleNotAssumable());
    const h = harness();

    const result = await runBuild({ ...OPTIONS, maxAttempts: 4, retryDelayMs: 2_000 }, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(4);
    expect(h.sleeps).toEqual([2_000, 2_000, 2_000]);
    const last = h.out.at(-1) ?? "";
    expect(last).toMatch(/^error: gave up starting a build of knock-lambda-build-dev after 4 attempt\(s\), 2s apart/);
    expect(last).toContain(`InvalidInputException: ${ROLE_MESSAGE}`);
    expect(last).toContain("trust policy allows codebuild.amazonaws.com");
    expect(last).toContain("codebuild_max_retries");
    expect(h.err).toEqual([last]);
    expect(h.text()).not.toContain("build id:");
    expect(codebuildMock.commandCalls(BatchGetBuildsCommand)).toHaveLength(0);
  });

  it.each([
    ["a missing project", new ResourceNotFoundException({ message: "Project cannot be found: arn:aws:codebuild:us-east-2:123456789012:project/nope", $metadata: {} })],
    ["another invalid input", new InvalidInputException({ message: "Invalid source location", $metadata: {} })],
  ])("fails at once, without retrying, on %s", async (_label, error) => {
    codebuildMock.on(StartBuildCommand).rejects(error);
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(h.sleeps).toEqual([]);
    expect(h.out.at(-1)).toBe(`error: could not start a build of knock-lambda-build-dev: ${error.name}: ${error.message}`);
  });
});

describe("isRolePropagationError", () => {
  const withName = (name: string, message: string) => Object.assign(new Error(message), { name });

  it.each([
    [withName("InvalidInputException", ROLE_MESSAGE), true],
    [withName("AccessDeniedException", ROLE_MESSAGE), true],
    [withName("AccessDenied", "CodeBuild is not authorized to perform sts:AssumeRole on role/x"), true],
    // The caller lacking codebuild:StartBuild is permanent, not propagation.
    [withName("AccessDeniedException", "User: arn:aws:iam::1:user/me is not authorized to perform: codebuild:StartBuild"), false],
    [withName("InvalidInputException", "Invalid service role: arn:aws:iam::1:role/x"), false],
    [withName("ThrottlingException", ROLE_MESSAGE), false],
    ["not an error", false],
  ])("classifies %s as %s", (error, expected) => {
    expect(isRolePropagationError(error)).toBe(expected);
  });
});

describe("runBuild: failed builds", () => {
  const failedBuild = (status: Build["buildStatus"]) =>
    build({
      buildStatus: status,
      currentPhase: "COMPLETED",
      logs: { groupName: "/aws/codebuild/knock-lambda-build-dev", streamName: "0b7d5c3e", deepLink: DEEP_LINK },
      phases: [
        { phaseType: "SUBMITTED", phaseStatus: "SUCCEEDED" },
        { phaseType: "PRE_BUILD", phaseStatus: "SUCCEEDED" },
        {
          phaseType: "BUILD",
          phaseStatus: "FAILED",
          contexts: [{ statusCode: "COMMAND_EXECUTION_ERROR", message: "Error while executing command: docker buildx build. Reason: exit status 1" }],
        },
        { phaseType: "POST_BUILD", phaseStatus: "SUCCEEDED" },
        { phaseType: "COMPLETED" },
      ],
    });

  it("exits non-zero naming the failing phase, its context and the last 30 log lines", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolvesOnce(build({ currentPhase: "BUILD" })).resolves(failedBuild("FAILED"));
    // Delivered newest first to prove the tail is printed in chronological order.
    const events = Array.from({ length: 30 }, (_, i) => ({ timestamp: 1_700_000_000_000 + (i + 11) * 1000, message: `log line ${i + 11}\n` }));
    logsMock.on(GetLogEventsCommand).resolves({ events: [...events].reverse() });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(h.out).toContain("failing phase: BUILD FAILED");
    expect(h.out).toContain("  COMMAND_EXECUTION_ERROR: Error while executing command: docker buildx build. Reason: exit status 1");
    const start = h.out.indexOf("--- last 30 log lines (/aws/codebuild/knock-lambda-build-dev) ---");
    expect(start).toBeGreaterThan(-1);
    expect(h.out.slice(start + 1, start + 31)).toEqual(Array.from({ length: 30 }, (_, i) => `log line ${i + 11}`));
    expect(h.out.at(-1)).toBe(`error: build ${BUILD_ID} ended FAILED in phase BUILD; see the log above`);
    expect(h.out.at(-1)).not.toMatch(/^sha256:/);
    const logCall = logsMock.commandCalls(GetLogEventsCommand)[0]?.args[0].input;
    expect(logCall).toEqual({
      logGroupName: "/aws/codebuild/knock-lambda-build-dev",
      logStreamName: "0b7d5c3e",
      startFromHead: false,
      limit: 30,
    });
  });

  it.each(["FAULT", "STOPPED", "TIMED_OUT"] as const)("treats a %s build as a failure", async (status) => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(failedBuild(status));
    logsMock.on(GetLogEventsCommand).resolves({ events: [{ timestamp: 1, message: "boom" }] });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(h.out).toContain(`[0m00s] build ${status}`);
    expect(h.out).toContain("boom");
  });

  it("says the log could not be read instead of crashing", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(failedBuild("FAILED"));
    logsMock.on(GetLogEventsCommand).rejects(new LogsNotFound({ message: "The specified log stream does not exist.", $metadata: {} }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(h.out).toContain(
      "(could not read the build log /aws/codebuild/knock-lambda-build-dev/0b7d5c3e: ResourceNotFoundException: The specified log stream does not exist.)",
    );
    expect(h.out).toContain("failing phase: BUILD FAILED");
  });

  it("says so when the build recorded no CloudWatch log", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(build({ buildStatus: "FAULT", phases: [{ phaseType: "PROVISIONING", phaseStatus: "FAULT" }] }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(h.out).toContain("failing phase: PROVISIONING FAULT");
    expect(h.out).toContain("(no CloudWatch log recorded for this build)");
    expect(logsMock.commandCalls(GetLogEventsCommand)).toHaveLength(0);
  });
});

describe("runBuild: no digest, no deploy", () => {
  it.each([
    ["no exported variables", undefined, /did not export IMAGE_DIGEST \(exported: none\)/],
    ["another variable only", [{ name: "IMAGE_TAG", value: "latest" }], /did not export IMAGE_DIGEST \(exported: IMAGE_TAG\)/],
    ["an empty digest", [{ name: "IMAGE_DIGEST", value: "" }], /did not export IMAGE_DIGEST/],
    ["a tag instead of a digest", [{ name: "IMAGE_DIGEST", value: "latest" }], /IMAGE_DIGEST="latest", which is not an image digest/],
    ["a short digest", [{ name: "IMAGE_DIGEST", value: "sha256:abc123" }], /which is not an image digest/],
    ["an upper-case digest", [{ name: "IMAGE_DIGEST", value: `sha256:${"AB12".repeat(16)}` }], /which is not an image digest/],
  ])("fails a SUCCEEDED build with %s", async (_label, exported, message) => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(
      build({ buildStatus: "SUCCEEDED", ...(exported ? { exportedEnvironmentVariables: exported } : {}) }),
    );
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(result.digest).toBeUndefined();
    expect(h.out.at(-1)).toMatch(message);
    expect(h.out.at(-1)).toContain("No digest, no deploy.");
    expect(() => parseRunnerOutput(h.text())).toThrow(/does not end with an image digest/);
  });
});

describe("runBuild: timeout and interrupts", () => {
  it("stops the build and exits 124 once CODEBUILD_TIMEOUT_MINUTES have passed", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(build({ currentPhase: "BUILD" }));
    const h = harness();

    const result = await runBuild({ ...OPTIONS, timeoutMs: 60_000, pollIntervalMs: 7_000 }, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.timeout);
    const stops = codebuildMock.commandCalls(StopBuildCommand);
    expect(stops).toHaveLength(1);
    expect(stops[0]?.args[0].input).toEqual({ id: BUILD_ID });
    // Never sleeps past the deadline: the last pause is shortened to what remains.
    expect(h.sleeps.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(h.out).toContain(`[1m00s] timed out after 1 min (CODEBUILD_TIMEOUT_MINUTES): stopping build ${BUILD_ID}`);
    expect(h.out.at(-1)).toMatch(/did not finish within 1 min and was stopped; raise codebuild_timeout_minutes/);
  });

  it("reports a build that finishes on the last poll instead of stopping it", async () => {
    codebuildMock
      .on(BatchGetBuildsCommand)
      .resolvesOnce(build({}))
      .resolves(build({ buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }));
    const h = harness();

    const result = await runBuild({ ...OPTIONS, timeoutMs: 5_000, pollIntervalMs: 5_000 }, h.deps);

    expect(result.exitCode).toBe(0);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
  });

  it.each([
    ["SIGTERM", EXIT_CODES.sigterm],
    ["SIGINT", EXIT_CODES.sigint],
  ])("on %s stops the running build and waits for StopBuild before returning", async (signalName, code) => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(build({ currentPhase: "BUILD" }));
    let stopFinished = false;
    codebuildMock.on(StopBuildCommand).callsFake(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stopFinished = true;
      return { build: { id: BUILD_ID, buildStatus: "STOPPED" } };
    });
    const controller = new AbortController();
    const h = harness(controller.signal, (call) => {
      if (call === 3) controller.abort(signalName);
    });

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(code);
    expect(stopFinished).toBe(true);
    expect(codebuildMock.commandCalls(StopBuildCommand).map((c) => c.args[0].input)).toEqual([{ id: BUILD_ID }]);
    expect(codebuildMock.commandCalls(BatchGetBuildsCommand)).toHaveLength(3);
    expect(h.out).toContain(`[0m15s] StopBuild accepted for ${BUILD_ID}`);
    expect(h.out.at(-1)).toBe(`error: interrupted by ${signalName}; build ${BUILD_ID} was asked to stop`);
  });

  it("stops the build even when the signal arrives during a status request", async () => {
    const controller = new AbortController();
    // The poll never answers: only the abort can end the wait.
    codebuildMock.on(BatchGetBuildsCommand).callsFake(() => {
      setTimeout(() => controller.abort("SIGTERM"), 5);
      return new Promise(() => undefined);
    });
    const h = harness(controller.signal);

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.sigterm);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(1);
  });

  it("still exits non-zero and points to the console when StopBuild itself fails", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolves(build({ currentPhase: "BUILD" }));
    codebuildMock.on(StopBuildCommand).rejects(new InvalidInputException({ message: "Build already completed", $metadata: {} }));
    const controller = new AbortController();
    const h = harness(controller.signal, () => controller.abort("SIGTERM"));

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.sigterm);
    expect(h.out).toContain(
      `[0m05s] StopBuild failed (InvalidInputException: Build already completed); stop ${BUILD_ID} in the CodeBuild console`,
    );
  });

  it("does not call StopBuild when interrupted before any build started", async () => {
    codebuildMock.on(StartBuildCommand).rejects(roleNotAssumable());
    const controller = new AbortController();
    const h = harness(controller.signal, () => controller.abort("SIGINT"));

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.sigint);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
    expect(h.out.at(-1)).toBe("error: received SIGINT before a build started; nothing to stop");
  });
});

describe("runBuild: losing track of the build", () => {
  it("tolerates a failed status request and carries on", async () => {
    codebuildMock
      .on(BatchGetBuildsCommand)
      .rejectsOnce(new Error("socket hang up"))
      .resolves(build({ buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(h.out).toContain("[0m00s] could not read the build status (1/5): Error: socket hang up");
  });

  it("stops the build and fails after 5 status requests in a row fail", async () => {
    codebuildMock.on(BatchGetBuildsCommand).resolves({ builds: [], buildsNotFound: [BUILD_ID] });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(codebuildMock.commandCalls(BatchGetBuildsCommand)).toHaveLength(5);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(1);
    expect(h.out.at(-1)).toMatch(/could not read the status of build .* 5 times in a row/);
  });
});

describe("parseRunnerEnv", () => {
  const base = { CODEBUILD_PROJECT_NAME: "knock-lambda-build-dev", AWS_REGION: "us-east-2" };

  it("applies the documented defaults", () => {
    expect(parseRunnerEnv(base)).toEqual({
      projectName: "knock-lambda-build-dev",
      region: "us-east-2",
      maxAttempts: 10,
      retryDelayMs: 30_000,
      timeoutMs: 30 * 60_000,
      pollIntervalMs: 5_000,
    });
  });

  it("converts explicit values and treats empty ones as unset", () => {
    const options = parseRunnerEnv({
      ...base,
      CODEBUILD_MAX_RETRIES: "3",
      CODEBUILD_RETRY_DELAY_SECONDS: "0",
      CODEBUILD_TIMEOUT_MINUTES: "480",
      BUILD_POLL_INTERVAL_SECONDS: "",
      BUILD_CONTEXT_SHA256: "abc",
    });
    expect(options).toMatchObject({ maxAttempts: 3, retryDelayMs: 0, timeoutMs: 480 * 60_000, pollIntervalMs: 5_000, contextSha256: "abc" });
  });

  it.each([
    [{ CODEBUILD_PROJECT_NAME: undefined }, "CODEBUILD_PROJECT_NAME is required"],
    [{ CODEBUILD_PROJECT_NAME: "bad name;rm -rf" }, 'CODEBUILD_PROJECT_NAME="bad name;rm -rf" is not allowed'],
    [{ AWS_REGION: "" }, "AWS_REGION is required"],
    [{ AWS_REGION: "Ohio" }, 'AWS_REGION="Ohio" is not allowed: an AWS region name such as us-east-2'],
    // The stack's settings: the settings table's limits and default, and the config key they come from.
    [{ CODEBUILD_MAX_RETRIES: "0" }, 'CODEBUILD_MAX_RETRIES="0" is not allowed: expected a whole number from 1 to 100 (attempts to start the build; default 10; config key codebuild_max_retries)'],
    [{ CODEBUILD_MAX_RETRIES: "101" }, 'CODEBUILD_MAX_RETRIES="101" is not allowed: expected a whole number from 1 to 100'],
    [{ CODEBUILD_MAX_RETRIES: "2.5" }, 'CODEBUILD_MAX_RETRIES="2.5" is not allowed: expected a whole number from 1 to 100'],
    [{ CODEBUILD_RETRY_DELAY_SECONDS: "-1" }, 'CODEBUILD_RETRY_DELAY_SECONDS="-1" is not allowed: expected a whole number from 0 to 300 (seconds between attempts; default 30; config key codebuild_retry_delay)'],
    [{ CODEBUILD_RETRY_DELAY_SECONDS: "0.5" }, 'CODEBUILD_RETRY_DELAY_SECONDS="0.5" is not allowed: expected a whole number from 0 to 300'],
    [{ CODEBUILD_TIMEOUT_MINUTES: "4" }, 'CODEBUILD_TIMEOUT_MINUTES="4" is not allowed: expected a whole number from 5 to 480 (minutes; default 30; config key codebuild_timeout_minutes)'],
    [{ CODEBUILD_TIMEOUT_MINUTES: "481" }, 'CODEBUILD_TIMEOUT_MINUTES="481" is not allowed: expected a whole number from 5 to 480'],
    [{ BUILD_POLL_INTERVAL_SECONDS: "fast" }, 'BUILD_POLL_INTERVAL_SECONDS="fast" is not allowed: must be a number > 0'],
  ])("rejects %o naming the variable, the value and what is allowed", (override, message) => {
    let thrown: unknown;
    try {
      parseRunnerEnv({ ...base, ...override });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RunnerConfigError);
    expect((thrown as RunnerConfigError).problems).toEqual([expect.stringContaining(message)]);
  });

  it("lists every invalid variable at once", () => {
    expect(() => parseRunnerEnv({ CODEBUILD_MAX_RETRIES: "x" })).toThrow(
      /CODEBUILD_PROJECT_NAME is required[\s\S]*AWS_REGION is required[\s\S]*CODEBUILD_MAX_RETRIES="x"/,
    );
  });
});

describe("parseRunnerOutput", () => {
  const good = `starting CodeBuild project p in us-east-2\nbuild id: ${BUILD_ID}\n[0m00s] phase SUBMITTED\n[1m10s] build SUCCEEDED\n${DIGEST}`;

  it("returns the build id and the digest, with or without the trailing newline", () => {
    expect(parseRunnerOutput(good)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
    expect(parseRunnerOutput(`${good}\r\n\n`)).toEqual({ buildId: BUILD_ID, digest: DIGEST });
  });

  it("rejects output whose last line is not a digest, quoting that line", () => {
    expect(() => parseRunnerOutput(`${good}\nerror: something after`)).toThrow(
      /does not end with an image digest .*last line was "error: something after"\. No digest, no deploy\./,
    );
  });

  it("rejects output without exactly one build id line", () => {
    expect(() => parseRunnerOutput(good.replace(/build id: .*\n/, ""))).toThrow(/exactly one 'build id: <id>' line; found 0/);
    expect(() => parseRunnerOutput(`build id: a\n${good}`)).toThrow(/found 2/);
  });

  it("rejects empty output", () => {
    expect(() => parseRunnerOutput("\n")).toThrow(/printed nothing/);
  });
});

describe("formatElapsed", () => {
  it.each([
    [0, "[0m00s]"],
    [5_999, "[0m05s]"],
    [125_000, "[2m05s]"],
    [3_725_000, "[62m05s]"],
    [-10, "[0m00s]"],
  ])("formats %d ms as %s", (ms, text) => {
    expect(formatElapsed(ms)).toBe(text);
  });
});

describe("runBuild: the account's concurrent-build quota", () => {
  // The message CodeBuild gives new accounts (aws-ia/terraform-aws-control_tower_account_factory #100, #179).
  const zeroQuota = () =>
    new AccountLimitExceededException({ message: "Cannot have more than 0 builds in queue for the account", $metadata: {} });
  const linuxMedium = { ...OPTIONS, computeType: "BUILD_GENERAL1_MEDIUM", environmentType: "LINUX_CONTAINER" } as const;

  it("explains a zero quota in one message — what it is, how to raise it, nothing deployed — and never retries it", async () => {
    codebuildMock.on(StartBuildCommand).rejects(zeroQuota());
    const h = harness();

    const result = await runBuild(linuxMedium, h.deps);

    expect(result).toEqual({ exitCode: EXIT_CODES.failure });
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(h.sleeps).toEqual([]);
    const message = h.out.at(-1) ?? "";
    expect(h.err).toEqual([message]);
    expect(h.out.filter((l) => l.startsWith("error:"))).toEqual([message]);
    expect(message).toMatch(/^error: CodeBuild will not start any build of knock-lambda-build-dev: AccountLimitExceededException: Cannot have more than 0 builds in queue for the account\./);
    expect(message).toContain("quota of concurrently running CodeBuild builds for Linux/Medium (BUILD_GENERAL1_MEDIUM on LINUX_CONTAINER) is 0 in us-east-2");
    expect(message).toContain('Service Quotas console (AWS services → AWS CodeBuild → "Concurrently running builds for Linux/Medium environment" → Request increase at account level');
    expect(message).toContain(
      "aws service-quotas request-service-quota-increase --region us-east-2 --service-code codebuild --quota-code L-2DC20C30 --desired-value 2",
    );
    expect(message).toContain("No build ran and nothing was deployed");
    expect(message).not.toContain("IAM propagation");
    expect(h.text()).not.toMatch(/attempt \d+\/10/);
    // The variables named the environment, so the project was not read.
    expect(codebuildMock.commandCalls(BatchGetProjectsCommand)).toHaveLength(0);
  });

  it("recognises the 'active builds' wording of the same zero quota", async () => {
    codebuildMock
      .on(StartBuildCommand)
      .rejects(new AccountLimitExceededException({ message: "Cannot have more than 0 active builds for the account", $metadata: {} }));
    const h = harness();

    await runBuild(linuxMedium, h.deps);

    expect(h.out.at(-1)).toContain("is 0 in us-east-2");
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
  });

  it("reads the environment from the project when the variables are unset, and gives the lookup step where no code is known", async () => {
    codebuildMock.on(StartBuildCommand).rejects(zeroQuota());
    codebuildMock.on(BatchGetProjectsCommand).resolves({
      projects: [{ name: "knock-lambda-build-dev", environment: { type: "ARM_CONTAINER", computeType: "BUILD_GENERAL1_MEDIUM", image: "x" } }],
    });
    const h = harness();

    await runBuild(OPTIONS, h.deps);

    expect(codebuildMock.commandCalls(BatchGetProjectsCommand)[0]?.args[0].input).toEqual({ names: ["knock-lambda-build-dev"] });
    const message = h.out.at(-1) ?? "";
    expect(message).toContain("for ARM/Medium (BUILD_GENERAL1_MEDIUM on ARM_CONTAINER) is 0");
    expect(message).toContain('"Concurrently running builds for ARM/Medium environment"');
    expect(message).toContain("aws service-quotas list-service-quotas --region us-east-2 --service-code codebuild (to find its quota code)");
    expect(message).not.toMatch(/--quota-code L-/);
  });

  it("still names the quota family when the project cannot be read", async () => {
    codebuildMock.on(StartBuildCommand).rejects(zeroQuota());
    codebuildMock.on(BatchGetProjectsCommand).rejects(accessDenied("not authorized to perform: codebuild:BatchGetProjects"));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    const message = h.out.at(-1) ?? "";
    expect(message).toContain("for this project's compute type is 0 in us-east-2");
    expect(message).toContain('"Concurrently running builds for <Linux|ARM>/<size> environment" quota that matches codebuild_compute_type and lambda_architecture');
  });

  it("tells busy slots apart from a zero quota: wait or stop other builds, no retry", async () => {
    codebuildMock
      .on(StartBuildCommand)
      .rejects(new AccountLimitExceededException({ message: "Cannot have more than 5 builds in queue for the account", $metadata: {} }));
    const h = harness();

    const result = await runBuild(linuxMedium, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(h.sleeps).toEqual([]);
    const message = h.out.at(-1) ?? "";
    expect(message).toMatch(/^error: CodeBuild will not queue another build of knock-lambda-build-dev: AccountLimitExceededException: Cannot have more than 5 builds/);
    expect(message).toContain("Other builds in this account hold every slot of its concurrent-build quota for Linux/Medium");
    expect(message).toContain("Wait for them to finish, or stop the ones you do not need (CodeBuild console → Build history), then run pulumi up again");
    expect(message).toContain('raise "Concurrently running builds for Linux/Medium environment"');
    expect(message).not.toContain("is 0");
    expect(message).toContain("nothing was deployed");
  });

  it("still points at the quotas for an account limit worded some other way", async () => {
    codebuildMock.on(StartBuildCommand).rejects(new AccountLimitExceededException({ message: "Account limit reached", $metadata: {} }));
    const h = harness();

    await runBuild(linuxMedium, h.deps);

    const message = h.out.at(-1) ?? "";
    expect(message).toMatch(/^error: CodeBuild refused to start a build of knock-lambda-build-dev because of an account limit: AccountLimitExceededException: Account limit reached\./);
    expect(message).toContain("--quota-code L-2DC20C30");
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
  });
});

describe("concurrentBuildQuota", () => {
  it.each([
    ["LINUX_CONTAINER", "BUILD_GENERAL1_SMALL", "Concurrently running builds for Linux/Small environment", "L-9D07B6EF"],
    ["LINUX_CONTAINER", "BUILD_GENERAL1_MEDIUM", "Concurrently running builds for Linux/Medium environment", "L-2DC20C30"],
    ["LINUX_CONTAINER", "BUILD_GENERAL1_LARGE", "Concurrently running builds for Linux/Large environment", "L-4DDC4A99"],
    ["LINUX_CONTAINER", "BUILD_GENERAL1_2XLARGE", "Concurrently running builds for Linux/2XLarge environment", "L-0397D009"],
    ["ARM_CONTAINER", "BUILD_GENERAL1_LARGE", "Concurrently running builds for ARM/Large environment", "L-596BEAB4"],
    ["ARM_CONTAINER", "BUILD_GENERAL1_XLARGE", "Concurrently running builds for ARM/XLarge environment", undefined],
  ])("maps %s %s to %s (%s)", (type, compute, name, code) => {
    const quota = concurrentBuildQuota(type, compute);
    expect(quota?.name).toBe(name);
    expect(quota?.code).toBe(code);
  });

  it.each([
    [undefined, "BUILD_GENERAL1_MEDIUM"],
    ["LINUX_CONTAINER", undefined],
    ["LINUX_CONTAINER", "BUILD_LAMBDA_1GB"],
    ["WINDOWS_SERVER_2019_CONTAINER", "BUILD_GENERAL1_MEDIUM"],
  ])("knows no single quota for %s %s", (type, compute) => {
    expect(concurrentBuildQuota(type, compute)).toBeUndefined();
  });
});

describe("runBuild: a first build denied access before its first command (IAM propagation)", () => {
  const FIRST = "knock-lambda-build-dev:11111111-1111-4111-8111-111111111111";
  const SECOND = "knock-lambda-build-dev:22222222-2222-4222-8222-222222222222";
  // The phase-details shape of a role that cannot read the S3 source yet (public reports of CodeBuild's
  // "CLIENT_ERROR: AccessDenied: Access Denied status code: 403, … for primary source").
  const sourceDenied = (id: string): Build => ({
    id,
    buildStatus: "FAILED",
    currentPhase: "COMPLETED",
    phases: [
      { phaseType: "SUBMITTED", phaseStatus: "SUCCEEDED" },
      { phaseType: "QUEUED", phaseStatus: "SUCCEEDED" },
      { phaseType: "PROVISIONING", phaseStatus: "SUCCEEDED" },
      {
        phaseType: "DOWNLOAD_SOURCE",
        phaseStatus: "FAILED",
        contexts: [
          {
            statusCode: "CLIENT_ERROR",
            message: "AccessDenied: Access Denied status code: 403, request id: 7Q2W, host id: aGVsbG8= for primary source",
          },
        ],
      },
      { phaseType: "FINALIZING", phaseStatus: "SUCCEEDED" },
      { phaseType: "COMPLETED" },
    ],
  });
  const logsDenied = (id: string): Build => ({
    id,
    buildStatus: "FAILED",
    phases: [
      { phaseType: "SUBMITTED", phaseStatus: "SUCCEEDED" },
      {
        phaseType: "QUEUED",
        phaseStatus: "FAILED",
        contexts: [
          {
            statusCode: "ACCESS_DENIED",
            message:
              "Service role arn:aws:iam::123456789012:role/codebuild-role-1a2b does not allow AWS CodeBuild to create Amazon CloudWatch Logs log streams for build arn:aws:codebuild:us-east-2:123456789012:build/x",
          },
        ],
      },
    ],
  });
  const succeeded = (id: string): Build => ({ id, buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] });

  /** BatchGetBuilds answers with whatever `builds[id]` holds for the requested id (asynchronously, as the SDK's send does). */
  function answer(builds: Record<string, Build>): void {
    codebuildMock.on(BatchGetBuildsCommand).callsFake(async (input: { ids: string[] }) => ({
      builds: input.ids.flatMap((id) => (builds[id] ? [builds[id]] : [])),
    }));
  }

  it("starts a new build after a DOWNLOAD_SOURCE AccessDenied, says why, and reports only the build that produced the image", async () => {
    codebuildMock.on(StartBuildCommand).resolvesOnce({ build: { id: FIRST } }).resolves({ build: { id: SECOND } });
    answer({ [FIRST]: sourceDenied(FIRST), [SECOND]: succeeded(SECOND) });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result).toEqual({ exitCode: 0, buildId: SECOND, digest: DIGEST });
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(2);
    const retry = h.out.filter((l) => l.includes("was denied access"));
    expect(retry).toEqual([
      `attempt 1/10: build ${FIRST} was denied access in DOWNLOAD_SOURCE (CLIENT_ERROR: AccessDenied: Access Denied status code: 403, request id: 7Q2W, host id: aGVsbG8= for primary source); ` +
        "the new service role policy may not have reached CodeBuild yet (IAM propagation); starting a new build in 30s",
    ]);
    expect(h.sleeps).toEqual([30_000]);
    expect(h.out.filter((l) => l.startsWith("started build "))).toEqual([`started build ${FIRST}`, `started build ${SECOND}`]);
    expect(parseRunnerOutput(h.text())).toEqual({ buildId: SECOND, digest: DIGEST });
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
  });

  it("retries a build that could not create its log stream in QUEUED", async () => {
    codebuildMock.on(StartBuildCommand).resolvesOnce({ build: { id: FIRST } }).resolves({ build: { id: SECOND } });
    answer({ [FIRST]: logsDenied(FIRST), [SECOND]: succeeded(SECOND) });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(h.out.find((l) => l.includes("was denied access"))).toContain(`build ${FIRST} was denied access in QUEUED (ACCESS_DENIED: Service role arn:aws:iam`);
  });

  it("shares one attempt budget with StartBuild's role retries and then fails naming the permissions to check", async () => {
    codebuildMock
      .on(StartBuildCommand)
      .rejectsOnce(roleNotAssumable())
      .resolvesOnce({ build: { id: FIRST } })
      .resolves({ build: { id: SECOND } });
    answer({ [FIRST]: sourceDenied(FIRST), [SECOND]: sourceDenied(SECOND) });
    logsMock.on(GetLogEventsCommand).resolves({ events: [] });
    const h = harness();

    const result = await runBuild({ ...OPTIONS, maxAttempts: 3 }, h.deps);

    expect(result).toEqual({ exitCode: EXIT_CODES.failure, buildId: SECOND });
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(3);
    expect(h.out.filter((l) => /^attempt \d\/3:/.test(l)).map((l) => l.slice(0, 14))).toEqual(["attempt 1/3: C", "attempt 2/3: b"]);
    expect(h.out.filter((l) => l.startsWith("build id:"))).toEqual([`build id: ${SECOND}`]);
    expect(h.out).toContain("failing phase: DOWNLOAD_SOURCE FAILED");
    const last = h.out.at(-1) ?? "";
    expect(last).toMatch(new RegExp(`^error: build ${SECOND} ended FAILED in phase DOWNLOAD_SOURCE; still denied access after 3 attempt\\(s\\)`));
    expect(last).toContain("s3:GetObject on the build context object");
    expect(h.err).toEqual([last]);
  });

  it("stops retrying as soon as an interrupt arrives, without stopping a build that already failed", async () => {
    codebuildMock.on(StartBuildCommand).resolvesOnce({ build: { id: FIRST } }).resolves({ build: { id: SECOND } });
    answer({ [FIRST]: sourceDenied(FIRST) });
    const controller = new AbortController();
    const h = harness(controller.signal, () => controller.abort("SIGTERM"));

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.sigterm);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
    expect(h.out.at(-1)).toBe(`error: received SIGTERM before a new build started (build ${FIRST} had already failed); nothing to stop`);
  });

  it("does not retry a failure in the build's own commands, even one that says AccessDenied", async () => {
    const preBuild: Build = {
      id: FIRST,
      buildStatus: "FAILED",
      phases: [
        { phaseType: "DOWNLOAD_SOURCE", phaseStatus: "SUCCEEDED" },
        {
          phaseType: "PRE_BUILD",
          phaseStatus: "FAILED",
          contexts: [{ statusCode: "COMMAND_EXECUTION_ERROR", message: "Error while executing command: aws ecr get-login-password. Reason: exit status 254" }],
        },
      ],
    };
    codebuildMock.on(StartBuildCommand).resolves({ build: { id: FIRST } });
    answer({ [FIRST]: preBuild });
    logsMock.on(GetLogEventsCommand).resolves({ events: [] });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(EXIT_CODES.failure);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toHaveLength(1);
    expect(h.out.at(-1)).toBe(`error: build ${FIRST} ended FAILED in phase PRE_BUILD; see the log above`);
  });
});

describe("earlyAccessDenial", () => {
  const failedIn = (phaseType: string, statusCode: string, message: string, buildStatus: Build["buildStatus"] = "FAILED"): Build => ({
    buildStatus,
    phases: [
      { phaseType: "SUBMITTED", phaseStatus: "SUCCEEDED" },
      { phaseType: phaseType as "QUEUED", phaseStatus: "FAILED", contexts: [{ statusCode, message }] },
    ],
  });

  it.each([
    [failedIn("DOWNLOAD_SOURCE", "CLIENT_ERROR", "AccessDenied: Access Denied status code: 403, request id: X, host id: Y for primary source"), "DOWNLOAD_SOURCE"],
    [failedIn("PROVISIONING", "ACCESS_DENIED", "Service role … does not allow AWS CodeBuild to create Amazon CloudWatch Logs log streams"), "PROVISIONING"],
    [failedIn("QUEUED", "ACCESS_DENIED", "Service role … does not allow AWS CodeBuild to create Amazon CloudWatch Logs log streams", "FAULT"), "QUEUED"],
  ])("recognises %#", (build, phase) => {
    expect(earlyAccessDenial(build)?.phase).toBe(phase);
  });

  it.each([
    ["a missing source object", failedIn("DOWNLOAD_SOURCE", "CLIENT_ERROR", "NoSuchKey: The specified key does not exist. for primary source")],
    ["a buildspec error", failedIn("DOWNLOAD_SOURCE", "YAML_FILE_ERROR", "stat /codebuild/output/src1/src/buildspec.yml: no such file or directory")],
    ["a denial in BUILD", failedIn("BUILD", "COMMAND_EXECUTION_ERROR", "AccessDenied: Access Denied")],
    ["a stopped build", failedIn("DOWNLOAD_SOURCE", "CLIENT_ERROR", "AccessDenied: Access Denied", "STOPPED")],
    ["a build without phases", { buildStatus: "FAILED" } as Build],
  ])("leaves %s alone", (_label, build) => {
    expect(earlyAccessDenial(build)).toBeUndefined();
  });
});

describe("runBuild: builds left running by an earlier, cancelled run", () => {
  const LEFT = "knock-lambda-build-dev:99999999-9999-4999-8999-999999999999";
  const DONE = "knock-lambda-build-dev:88888888-8888-4888-8888-888888888888";

  it("stops the project's IN_PROGRESS builds before it starts a new one, and only those", async () => {
    codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: [LEFT, DONE] });
    codebuildMock.on(BatchGetBuildsCommand).callsFake(async (input: { ids: string[] }) => {
      if (input.ids.length > 1) {
        return {
          builds: [
            { id: LEFT, buildStatus: "IN_PROGRESS", startTime: new Date("2026-08-01T10:00:00Z") },
            { id: DONE, buildStatus: "SUCCEEDED" },
          ],
        };
      }
      return { builds: [{ id: BUILD_ID, buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }] };
    });
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(codebuildMock.commandCalls(ListBuildsForProjectCommand)[0]?.args[0].input).toEqual({ projectName: "knock-lambda-build-dev", sortOrder: "DESCENDING" });
    expect(codebuildMock.commandCalls(StopBuildCommand).map((c) => c.args[0].input)).toEqual([{ id: LEFT }]);
    const order = codebuildMock.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    expect(order.indexOf("StopBuildCommand")).toBeLessThan(order.indexOf("StartBuildCommand"));
    expect(h.out).toContain(
      `stopping build ${LEFT} (running since 2026-08-01T10:00:00.000Z): an earlier run of this stack was cancelled or killed and left it behind`,
    );
    expect(parseRunnerOutput(h.text())).toEqual({ buildId: BUILD_ID, digest: DIGEST });
  });

  it("carries on with a note when it may not list the project's builds", async () => {
    codebuildMock
      .on(ListBuildsForProjectCommand)
      .rejects(accessDenied("not authorized to perform: codebuild:ListBuildsForProject"));
    codebuildMock
      .on(BatchGetBuildsCommand)
      .resolves(build({ buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(h.out).toContain(
      "note: could not look for builds an earlier, cancelled run left running (AccessDeniedException: not authorized to perform: codebuild:ListBuildsForProject); carrying on",
    );
    expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(0);
  });

  it("carries on when a leftover build refuses to stop", async () => {
    codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: [LEFT] });
    codebuildMock.on(BatchGetBuildsCommand).callsFake(async (input: { ids: string[] }) =>
      input.ids[0] === LEFT
        ? { builds: [{ id: LEFT, buildStatus: "IN_PROGRESS" }] }
        : { builds: [{ id: BUILD_ID, buildStatus: "SUCCEEDED", exportedEnvironmentVariables: [{ name: "IMAGE_DIGEST", value: DIGEST }] }] },
    );
    codebuildMock.on(StopBuildCommand).rejects(new InvalidInputException({ message: "Build already completed", $metadata: {} }));
    const h = harness();

    const result = await runBuild(OPTIONS, h.deps);

    expect(result.exitCode).toBe(0);
    expect(h.out).toContain(`could not stop ${LEFT} (InvalidInputException: Build already completed); stop it in the CodeBuild console if it is still running`);
  });
});

describe("parseRunnerEnv: the build environment variables", () => {
  const base = { CODEBUILD_PROJECT_NAME: "knock-lambda-build-dev", AWS_REGION: "us-east-2" };

  it("takes CODEBUILD_COMPUTE_TYPE and CODEBUILD_ENVIRONMENT_TYPE when set", () => {
    expect(parseRunnerEnv({ ...base, CODEBUILD_COMPUTE_TYPE: "BUILD_GENERAL1_LARGE", CODEBUILD_ENVIRONMENT_TYPE: "ARM_CONTAINER" })).toMatchObject({
      computeType: "BUILD_GENERAL1_LARGE",
      environmentType: "ARM_CONTAINER",
    });
    expect(parseRunnerEnv({ ...base, CODEBUILD_COMPUTE_TYPE: "", CODEBUILD_ENVIRONMENT_TYPE: " " })).not.toHaveProperty("computeType");
  });

  it.each([
    [{ CODEBUILD_COMPUTE_TYPE: "medium; rm -rf" }, 'CODEBUILD_COMPUTE_TYPE="medium; rm -rf" is not allowed'],
    [{ CODEBUILD_ENVIRONMENT_TYPE: "WINDOWS_CONTAINER" }, 'CODEBUILD_ENVIRONMENT_TYPE="WINDOWS_CONTAINER" is not allowed: LINUX_CONTAINER or ARM_CONTAINER'],
  ])("rejects %o", (override, message) => {
    expect(() => parseRunnerEnv({ ...base, ...override })).toThrow(message);
  });
});
