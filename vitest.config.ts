import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // test/versions starts clusters of every PostgreSQL version: `npm run test:versions` runs it
    // (with the core of the suite on each version), `npm test` does not.
    exclude: process.env.TERA_CDC_TEST_VERSIONS ? [] : ["test/versions/**"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each start their own PostgreSQL and broker; two cores do not take more.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
