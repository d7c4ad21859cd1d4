// The build runner that `knock-lambda-build-run` (@pulumi/command local.Command) executes:
//
//   node --import tsx infra/build-runner.ts
//
// It starts the CodeBuild project, follows the build, and on success ends its stdout with the pushed
// image digest, which the Pulumi program turns into the function's image URI. It needs Node only —
// no AWS CLI, bash or jq on the deployer's machine, as the original needed — and takes every parameter from
// the environment, so nothing is ever spliced into a shell line. The digest travels through this
// process's own stdout, never a shared temp file, and there is no fallback tag (the original
// shared a temp file between stacks and fell back to `:latest`).
//
// This file is the process entry: it reads the environment, wires SIGINT/SIGTERM and runs the build.
// The runner's parts live in infra/build-runner/ (run.ts drives options, start, follow, outcome and
// logs through the deps.ts port); importing this file, like any of them, has no side effects.
//
// What a cancelled `pulumi up` does to this process (read from the sources of @pulumi/command 1.2.1,
// pulumi-go-provider 1.3.0 and pulumi/pulumi 3.259.0):
// - The first Ctrl-C (or SIGTERM) makes the engine cancel the deployment and send the Cancel RPC to
//   every provider (pulumi `pkg/resource/deploy/deployment_executor.go`: SignalCancellation when the
//   caller context is done). pulumi-go-provider's `middleware/cancel` answers it by cancelling the
//   context of every operation in flight, and pulumi-command runs this process with
//   `exec.CommandContext(ctx, "node", …)` (`provider/pkg/provider/local/commandOutputs.go`) without a
//   custom `Cancel`, so Go's os/exec kills it with SIGKILL at once. No handler runs, so the build is
//   left running until CodeBuild's own timeout (codebuild_timeout_minutes + 5).
// - The terminal's SIGINT never reaches us: plugins are started in their own process group
//   (pulumi `sdk/go/common/util/cmdutil/child_unix.go`, RegisterProcessGroup), and we are in the
//   provider's group, not the CLI's.
// - A second Ctrl-C only closes the plugins (SIGINT to the provider's process group, SIGKILL 5 s
//   later: pulumi `pkg/resource/plugin/plugin.go`); by then this process is already gone.
// - `customTimeouts` on the command would cancel the same context, with the same SIGKILL.
// So the SIGINT/SIGTERM handling below serves runs by hand and any future provider that signals
// before it kills; what protects `pulumi up` is stopLeftoverBuilds (build-runner/start.ts), run
// before every new build.

import { abortableSleep, createAwsClients } from "./build-runner/deps";
import { EXIT_CODES } from "./build-runner/exit-codes";
import { parseRunnerEnv, RunnerConfigError, type Env, type RunnerOptions } from "./build-runner/options";
import { runBuild } from "./build-runner/run";

/**
 * Entry point: reads the environment, wires SIGINT/SIGTERM to a graceful StopBuild and runs the build.
 *
 * @returns the process exit code.
 */
export async function main(env: Env = process.env): Promise<number> {
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const err = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };

  let options: RunnerOptions;
  try {
    options = parseRunnerEnv(env);
  } catch (e) {
    if (!(e instanceof RunnerConfigError)) throw e;
    out(`error: ${e.message}`);
    err(`error: ${e.message}`);
    return EXIT_CODES.invalidEnvironment;
  }

  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      controller.abort(name);
      return;
    }
    // A second signal means "now": give up waiting for StopBuild.
    out(`received ${name} again; exiting without waiting for StopBuild`);
    process.exit(name === "SIGTERM" ? EXIT_CODES.sigterm : EXIT_CODES.sigint);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const { codebuild, logs } = createAwsClients(options.region);
  try {
    const result = await runBuild(options, {
      codebuild,
      logs,
      sleep: abortableSleep,
      now: () => performance.now(),
      out,
      err,
      signal: controller.signal,
    });
    return result.exitCode;
  } finally {
    codebuild.destroy();
    logs.destroy();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// `require` is undefined when a test runner loads this file as an ES module; only run when executed.
if (typeof require !== "undefined" && require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      const message = `error: build runner crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      process.stdout.write(`${message}\n`);
      process.stderr.write(`${message}\n`);
      process.exitCode = EXIT_CODES.failure;
    },
  );
}
