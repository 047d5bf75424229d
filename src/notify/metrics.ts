/**
 * keypool_notifications_total: what became of each notification per webhook. Labels name the
 * pool, the webhook (its name in the KeyPool spec) and the event type: all bounded. Never the
 * URL (Slack's carry a secret) and never a key id.
 */
import { Counter, type Registry } from "prom-client";
import type { NotificationPoolRef, NotificationType } from "./event.ts";

export const NOTIFICATION_OUTCOMES = [
  /** The webhook answered 2xx. */
  "delivered",
  /** Given up: a permanent refusal (4xx other than 408/429, 3xx), or the last attempt failed. */
  "failed",
  /** An attempt failed and another follows (one per retry, so a delivery may count several). */
  "retried",
  /** Never finished: pushed out of a full queue, or its webhook was removed or the notifier closed. */
  "dropped",
] as const;

export type NotificationOutcome = (typeof NOTIFICATION_OUTCOMES)[number];

export class NotificationMetrics {
  readonly #total: Counter<"namespace" | "pool" | "webhook" | "type" | "outcome">;

  constructor(registry: Registry) {
    this.#total = new Counter({
      name: "keypool_notifications_total",
      help: "Webhook notifications by pool, webhook, event type and outcome (delivered, failed, retried: one per retry, dropped).",
      labelNames: ["namespace", "pool", "webhook", "type", "outcome"],
      registers: [registry],
    });
  }

  count(
    pool: NotificationPoolRef,
    webhook: string,
    type: NotificationType,
    outcome: NotificationOutcome,
  ): void {
    this.#total.inc({ namespace: pool.namespace, pool: pool.name, webhook, type, outcome });
  }
}
