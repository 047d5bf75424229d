/**
 * The fake OpenAI server as a process of its own, for benchmarks: `node bench/fake-upstream.ts
 * <key> [<key> ...]` answers every key as valid, records nothing, and prints its URL.
 */
import { startFakeProvider } from "../test/fakes/index.ts";

const keys = process.argv.slice(2);
const fake = await startFakeProvider("openai", Object.fromEntries(keys.map((k) => [k, { kind: "valid" }])), {
  // 500 requests a minute per key (tier 1) would rate-limit the benchmark itself.
  limitScale: 100_000,
  record: false,
});
process.stdout.write(`${fake.url}\n`);
process.once("SIGTERM", () => void fake.close().then(() => process.exit(0)));
