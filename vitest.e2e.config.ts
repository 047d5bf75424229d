import { defineConfig } from "vitest/config";

// `npm run test:e2e`: the journey of test/e2e/journey.test.ts on a real cluster (this machine's
// single-node cluster, or kind through test/e2e/kind.sh). Not part of `npm test`: it needs root
// and builds a cluster. Its JSON report is read by .ci/run for the closing line.
export default defineConfig({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    reporters: ["default", ["json", { outputFile: ".vitest-e2e-results.json" }]],
    // One cluster for the file; the checks run in order and build on each other.
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 3_600_000,
  },
});
