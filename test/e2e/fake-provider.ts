/**
 * The fake OpenAI provider of the end-to-end journey (test/e2e/journey.test.ts), run in the
 * cluster by `node /app/fake-provider.ts` in a node:24-slim container. The ConfigMap mounted at /app holds
 * this file and test/fakes/*.ts side by side, hence `./index.ts`; in a checkout, where that file
 * is test/fakes/index.ts, `node test/e2e/fake-provider.ts` runs the same server.
 *
 * It answers FAKE_PROVIDER_KEY (default below) and the keys in FAKE_PROVIDER_KEYS (comma-separated:
 * the journey gives it examples/openai.yaml's and its own) like api.openai.com, on 0.0.0.0:8080
 * (FAKE_PROVIDER_PORT).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as Fakes from "../fakes/index.ts";

const beside = new URL("./index.ts", import.meta.url);
const fakes = existsSync(fileURLToPath(beside)) ? beside : new URL("../fakes/index.ts", import.meta.url);
const { startFakeProvider } = (await import(fakes.href)) as typeof Fakes;

const key = process.env.FAKE_PROVIDER_KEY ?? "sk-e2e-fake-openai-key-0001";
const more = (process.env.FAKE_PROVIDER_KEYS ?? "").split(",").filter((k) => k.length > 0);
const port = Number(process.env.FAKE_PROVIDER_PORT ?? "8080");

const fake = await startFakeProvider(
  "openai",
  Object.fromEntries([key, ...more].map((k) => [k, { kind: "valid" as const }])),
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
