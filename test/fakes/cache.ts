/**
 * Prompt caching, as the providers report it in their usage, one cache per fake server:
 * - OpenAI (https://platform.openai.com/docs/guides/prompt-caching) and Gemini's implicit caching
 *   (https://ai.google.dev/gemini-api/docs/caching): automatic for prompts of 1024 tokens or more;
 *   the longest leading run of messages sent before is read from the cache (OpenAI counts it in
 *   steps of 128 tokens after the first 1024). Reported as `prompt_tokens_details.cached_tokens`
 *   and `cachedContentTokenCount`, both part of the prompt tokens.
 * - Anthropic (https://docs.claude.com/en/docs/build-with-claude/prompt-caching): explicit, up to
 *   the last block with `cache_control`, when that prefix has 1024 tokens or more; the first
 *   request writes it (`cache_creation_input_tokens`), later ones read it
 *   (`cache_read_input_tokens`), and `input_tokens` counts only what comes after it.
 * Prompts shorter than that (what every other test sends) are never cached, nor looked at.
 */
import { createHash } from "node:crypto";
import { countTokens, textOf } from "./format.ts";

/** The shortest prompt (or Anthropic prefix) cached: 1024 tokens for the models the fakes serve. */
export const MIN_CACHED_TOKENS = 1024;
/** Prefixes remembered per server before it forgets them all (benchmarks send millions of calls). */
const MAX_ENTRIES = 10_000;

export class PromptCache {
  readonly #seen = new Set<string>();

  /**
   * Tokens of the longest leading run of `parts` (messages, contents) sent before, 0 when none is
   * or it is under MIN_CACHED_TOKENS; this prompt's runs are remembered for the next ones.
   */
  cachedLead(parts: readonly unknown[]): number {
    const hash = createHash("sha256");
    let lead = 0;
    const keys: string[] = [];
    for (const [i, part] of parts.entries()) {
      hash.update(`${JSON.stringify(part)}\n`);
      const key = hash.copy().digest("base64");
      if (this.#seen.has(key)) lead = i + 1;
      keys.push(key);
    }
    for (const key of keys) this.#remember(key);
    if (lead === 0) return 0;
    const tokens = countTokens(textOf(parts.slice(0, lead)));
    return tokens >= MIN_CACHED_TOKENS ? tokens : 0;
  }

  /** Whether `prefix` was cached before; it is from now on. */
  seen(prefix: unknown): boolean {
    const key = createHash("sha256").update(JSON.stringify(prefix)).digest("base64");
    const seen = this.#seen.has(key);
    this.#remember(key);
    return seen;
  }

  #remember(key: string): void {
    if (this.#seen.size >= MAX_ENTRIES) this.#seen.clear();
    this.#seen.add(key);
  }
}

/** OpenAI's cached tokens for a cached lead of `tokens`: 1024, then steps of 128 (never more than the prompt). */
export function openaiCachedTokens(tokens: number, promptTokens: number): number {
  if (tokens < MIN_CACHED_TOKENS) return 0;
  const stepped = MIN_CACHED_TOKENS + Math.floor((tokens - MIN_CACHED_TOKENS) / 128) * 128;
  return Math.min(stepped, promptTokens);
}

/**
 * Anthropic's cache prefix: the system blocks and message content blocks up to and including the
 * last one marked `cache_control`, in order; undefined when none is marked.
 */
export function anthropicCachePrefix(system: unknown, messages: unknown): unknown[] | undefined {
  const blocks: unknown[] = [];
  let last = -1;
  const add = (content: unknown) => {
    for (const block of Array.isArray(content) ? (content as unknown[]) : [content]) {
      blocks.push(block);
      if (typeof block === "object" && block !== null && "cache_control" in block) last = blocks.length - 1;
    }
  };
  if (system !== undefined) add(system);
  if (Array.isArray(messages))
    for (const message of messages as unknown[])
      add(
        typeof message === "object" && message !== null
          ? (message as { content?: unknown }).content
          : message,
      );
  return last < 0 ? undefined : blocks.slice(0, last + 1);
}
