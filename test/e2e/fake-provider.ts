/**
 * The fake OpenAI provider of the kind end-to-end test (test/e2e/kind.sh), run in the cluster by
 * `node /app/fake-provider.ts` in a node:24-slim container. The ConfigMap mounted at /app holds
 * this file and test/fakes/*.ts side by side, hence `./index.ts`; in a checkout, where that file
 * is test/fakes/index.ts, `node test/e2e/fake-provider.ts` runs the same server.
 *
 * It answers the key the e2e Secret holds (FAKE_PROVIDER_KEY, default below: scripts.test.ts
 * checks it against test/e2e/manifests.yaml) like api.openai.com, on 0.0.0.0:8080
 * (FAKE_PROVIDER_PORT).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as Fakes from "../fakes/index.ts";

const beside = new URL("./index.ts", import.meta.url);
const fakes = existsSync(fileURLToPath(beside)) ? beside : new URL("../fakes/index.ts", import.meta.url);
const { startFakeProvider } = (await import(fakes.href)) as typeof Fakes;

const key = process.env.FAKE_PROVIDER_KEY ?? "sk-e2e-fake-openai-key-0001";
const port = Number(process.env.FAKE_PROVIDER_PORT ?? "8080");

const fake = await startFakeProvider(
  "openai",
  { [key]: { kind: "valid" } },
  // Requests are not read back here: keep none, the pod may live for long.
  { host: "0.0.0.0", port, record: false },
);
console.log(`fake openai provider listening on 0.0.0.0:${port} (${fake.url})`);

function stop(signal: NodeJS.Signals): void {
  console.log(`${signal}: closing`);
  void fake.close().then(() => process.exit(0));
}
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
