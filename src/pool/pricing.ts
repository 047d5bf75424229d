/**
 * What a call costs: a price list (spec.pricing, and spec.pricingRef's ConfigMap) looked up by
 * model, times the tokens of each kind, times the key's cost multiplier. No prices are built in.
 */
import type { ModelPrice } from "../api/keypool.ts";
import type { CallUsage } from "./outcome.ts";

const MILLION = 1_000_000;

export class PriceTable {
  readonly #exact = new Map<string, ModelPrice>();
  /** Patterns (a trailing *) by prefix, longest first. */
  readonly #prefixes: Array<[string, ModelPrice]> = [];
  readonly size: number;

  /** Later lists win: `new PriceTable(fromConfigMap, fromSpec)`. */
  constructor(...lists: ReadonlyArray<readonly ModelPrice[] | undefined>) {
    const prefixes = new Map<string, ModelPrice>();
    for (const list of lists)
      for (const price of list ?? []) {
        if (price.model.endsWith("*")) prefixes.set(price.model.slice(0, -1), price);
        else this.#exact.set(price.model, price);
      }
    this.#prefixes = [...prefixes].sort((a, b) => b[0].length - a[0].length);
    this.size = this.#exact.size + this.#prefixes.length;
  }

  /** The price of `model`: its exact entry, else the longest pattern that matches; undefined: unpriced. */
  priceOf(model: string): ModelPrice | undefined {
    const exact = this.#exact.get(model);
    if (exact) return exact;
    for (const [prefix, price] of this.#prefixes) if (model.startsWith(prefix)) return price;
    return undefined;
  }

  /**
   * USD the call cost (0 when the model or its price is unknown, or the call used no tokens).
   * Cached input tokens cost cachedInputPerMillion when the list has it, inputPerMillion otherwise.
   */
  costUSD(usage: CallUsage | undefined, multiplier = 1): number {
    if (!usage?.model || multiplier === 0) return 0;
    const price = this.priceOf(usage.model);
    if (!price) return 0;
    const input = usage.inputTokens ?? 0;
    const cached = Math.min(usage.cachedInputTokens ?? 0, input);
    const output = usage.outputTokens ?? 0;
    const usd =
      ((input - cached) * price.inputPerMillion +
        cached * (price.cachedInputPerMillion ?? price.inputPerMillion) +
        output * price.outputPerMillion) /
      MILLION;
    return usd * multiplier;
  }
}

export const NO_PRICES = new PriceTable();
