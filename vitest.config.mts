import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Pulumi's mocks are process-global (pulumi.runtime.setMocks), so each test file gets its own
    // worker process rather than sharing one.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Keeps the handler's JSON log lines (written to stdout by its default sink) out of the run's
    // output, and shows them with a test that fails.
    setupFiles: ["test/support/handler-log-capture.ts"],
    env: {
      // @aws-sdk/core (client/emitWarningIfUnsupportedVersion) warns once per process, through
      // process.emitWarning, that SDK releases after the first week of January 2027 need Node >= 22;
      // this variable is the SDK's own switch for it. Tests only: the deployed function runs Node 22,
      // and `npm run build-runner`/`bench:handler` still show it to a user on Node 20. Remove it when
      // the project itself requires Node >= 22. Child processes that tests start with process.env
      // inherit it.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  },
});
