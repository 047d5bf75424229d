/**
 * The JSON body of a webhook delivery. Slack-compatible: Slack's incoming webhooks (and
 * Mattermost's, Rocket.Chat's, Discord's /slack endpoint) show `text` and ignore the other
 * fields; other receivers read `event`. `version` changes only when a field changes meaning.
 */
import type { NotificationEvent } from "./event.ts";

export const BODY_VERSION = 1;

export interface NotificationBody {
  /** One line for chat: what happened, to which pool (and key), with the event's message. */
  text: string;
  event: NotificationEvent;
  version: typeof BODY_VERSION;
}

export function notificationBody(event: NotificationEvent): NotificationBody {
  return { text: summaryLine(event), event: copyEvent(event), version: BODY_VERSION };
}

/** The body as sent (and signed): JSON, serialized once and given to every target as is. */
export function serializeBody(event: NotificationEvent): string {
  return JSON.stringify(notificationBody(event));
}

/**
 * "KeyInvalid in KeyPool default/openai-prod (key sk-...abcd, id 3f9ac2e1b0d4): <message>",
 * on one line, with `&`, `<` and `>` escaped as Slack asks (its mrkdwn reads `<...>` as a link).
 */
export function summaryLine(event: NotificationEvent): string {
  const key = event.key ? ` (key ${event.key.masked}, id ${event.key.id})` : "";
  const line = `${event.type} in KeyPool ${event.pool.namespace}/${event.pool.name}${key}: ${event.message}`;
  return escapeSlack(line.replace(/\s+/g, " ").trim());
}

/** Slack's three control characters, as its "Escaping text" section lists them. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The event's own fields and nothing else: a field that rode along on the object (a raw key
 * someone attached by mistake, say) is not serialized.
 */
function copyEvent(event: NotificationEvent): NotificationEvent {
  return {
    id: event.id,
    type: event.type,
    pool: { namespace: event.pool.namespace, name: event.pool.name },
    ...(event.key ? { key: { id: event.key.id, masked: event.key.masked } } : {}),
    reason: event.reason,
    message: event.message,
    at: event.at,
    ...(event.details ? { details: plainDetails(event.details) } : {}),
  };
}

/** Strings, booleans and finite numbers (JSON has no NaN or Infinity). */
function plainDetails(
  details: NonNullable<NotificationEvent["details"]>,
): Record<string, string | number | boolean> {
  const plain: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(details)) {
    if (typeof value === "string" || typeof value === "boolean") plain[name] = value;
    else if (typeof value === "number" && Number.isFinite(value)) plain[name] = value;
  }
  return plain;
}
