import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Pulumi's mocks are process-global (pulumi.runtime.setMocks), so each test file gets its own
    // worker process rather than sharing one.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
