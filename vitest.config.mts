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
  },
});
