import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each start their own PostgreSQL and broker; two cores do not take more.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
