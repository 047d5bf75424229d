import { defineConfig } from "vitest/config";

// package.json exports "keypool-operator/client" under a "keypool-source" condition too: tests
// import the package by its name and get src/client/*.ts (consumers get the compiled
// dist/client/). Test files run in vite's SSR environment; the rest is vite's
// defaultServerConditions.
const ssr = { resolve: { conditions: ["keypool-source", "module", "node", "development|production"] } };

export default defineConfig({
  test: {
    // The JSON report is what .ci/run reads to print its "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".vitest-results.json" }]],
    projects: [
      {
        ssr,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        ssr,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // One real control plane (etcd + kube-apiserver) for the whole run; each test file
          // works in namespaces of its own.
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
