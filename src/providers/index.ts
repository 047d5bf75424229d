/**
 * src/providers: everything provider-specific, as data. One profile per provider (auth headers, the
 * probe request, rate-limit header parsing, and a classification table that maps an HTTP answer to an
 * Outcome), plus the classification of transport failures.
 *
 * May import: src/api, src/pool (types) and Node built-ins. No I/O, no timers, no clock: time
 * comes only from the `nowMs` argument. The one exception is prober.ts, the active health
 * probes both commands run: it calls the providers (undici), keeps a timer and takes an
 * injected Clock, and may also import src/log.
 *
 * Files: headers.ts (header access, durations, dates), errors-body.ts (body parsing),
 * profile.ts (rule tables, HTTP fallback, classify), rate-limit.ts (header families, deadline choice),
 * calendar.ts (Pacific midnight, month starts), network.ts (transport errors), one file per provider.
 */
import { anthropic } from "./anthropic.ts";
import { google } from "./google.ts";
import { mistral } from "./mistral.ts";
import { openai } from "./openai.ts";
import { openaiCompatible } from "./openai-compatible.ts";
import type { ProviderName, ProviderProfile } from "./types.ts";

export { PROVIDER_NAMES } from "./types.ts";
export type {
  Classification,
  HeaderSource,
  ProbeRequest,
  ProviderName,
  ProviderProfile,
  ProviderResponse,
} from "./types.ts";
export { classifyNetworkError } from "./network.ts";
export { ANTHROPIC_VERSION } from "./anthropic.ts";
export { OPENAI_COMPATIBLE_DEFAULT_BASE_URL } from "./openai-compatible.ts";

/** Every provider profile, by the name a KeyPool's `spec.provider` uses. */
export const PROVIDERS: Readonly<Record<ProviderName, ProviderProfile>> = {
  openai,
  anthropic,
  google,
  mistral,
  "openai-compatible": openaiCompatible,
};

/** The profile for `name`; throws for a name that is not a provider (the API schema should prevent that). */
export function getProvider(name: ProviderName): ProviderProfile {
  if (!Object.hasOwn(PROVIDERS, name)) throw new Error(`unknown provider "${String(name)}"`);
  return PROVIDERS[name];
}
export { providerUrl } from "./url.ts";
