/**
 * test/fakes: fake OpenAI, Anthropic and Gemini servers that answer with each provider's real
 * response shapes, status codes, error bodies and rate-limit headers, scriptable per key.
 * Only node:http: nothing here depends on the code under test.
 *
 * Files: types.ts (the public interface), server.ts (server, recording, streaming), keys.ts (per-key
 * behaviour and usage windows), format.ts (header formats, ids, reply text), cache.ts (prompt caching
 * as the usage reports it), one file per provider.
 */
import { anthropicDialect } from "./anthropic.ts";
import { googleDialect } from "./google.ts";
import { openaiDialect } from "./openai.ts";
import { type Dialect, startServer } from "./server.ts";
import type { FakeOptions, FakeProvider, FakeProviderName, KeyBehaviour } from "./types.ts";

export type { FakeOptions, FakeProvider, FakeProviderName, KeyBehaviour, RecordedRequest } from "./types.ts";

const DIALECTS: Readonly<Record<FakeProviderName, Dialect>> = {
  openai: openaiDialect,
  anthropic: anthropicDialect,
  google: googleDialect,
};

/** Starts a fake `name` server on 127.0.0.1 and a free port (see FakeOptions), with `keys` scripted. */
export function startFakeProvider(
  name: FakeProviderName,
  keys?: Record<string, KeyBehaviour>,
  options?: FakeOptions,
): Promise<FakeProvider> {
  return startServer(DIALECTS[name], keys, options);
}
