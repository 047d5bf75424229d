import { describe, expect, it } from "vitest";
import { notificationBody, serializeBody, summaryLine } from "../../../src/notify/body.ts";
import { NOTIFICATION_TYPES, type NotificationEvent, poolKey } from "../../../src/notify/event.ts";
import { RAW_KEY, sampleEvent } from "./helpers.ts";

describe("the webhook body", () => {
  it("carries a one-line text, the event and version 1", () => {
    const event = sampleEvent({ details: { status: 401 } });
    expect(JSON.parse(serializeBody(event))).toEqual({
      text: "KeyInvalid in KeyPool default/openai-prod (key sk-...abcd, id 3f9ac2e1b0d4): The key was rejected by OpenAI (401 invalid_api_key) and left rotation.",
      event,
      version: 1,
    });
  });

  it.each<{ name: string; event: NotificationEvent; text: string }>([
    {
      name: "a pool event names no key",
      event: sampleEvent({ type: "PoolUnavailable", key: undefined, message: "No key can be handed out." }),
      text: "PoolUnavailable in KeyPool default/openai-prod: No key can be handed out.",
    },
    {
      name: "line breaks and runs of spaces become one space",
      event: sampleEvent({
        key: undefined,
        type: "KeyAlert",
        message: "Five failures\nin a row,\n\n  still failing.",
      }),
      text: "KeyAlert in KeyPool default/openai-prod: Five failures in a row, still failing.",
    },
    {
      name: "&, < and > are escaped as Slack asks",
      event: sampleEvent({ key: undefined, type: "BudgetWarning", message: "Spent > 80% of <team> & more" }),
      text: "BudgetWarning in KeyPool default/openai-prod: Spent &gt; 80% of &lt;team&gt; &amp; more",
    },
  ])("summarizes $name", ({ event, text }) => {
    expect(summaryLine(event)).toBe(text);
  });

  it("holds no raw key, even one attached to the event object by mistake", () => {
    const event = Object.assign(sampleEvent(), { value: RAW_KEY });
    Object.assign(event.key ?? {}, { raw: RAW_KEY });
    Object.assign(event.pool, { secret: RAW_KEY });
    const body = serializeBody(event);
    expect(body).not.toContain(RAW_KEY);
    expect(body).not.toContain(RAW_KEY.slice(3, 20));
    expect(body).toContain("sk-...abcd");
  });

  it("keeps only strings, booleans and finite numbers in details", () => {
    const details = {
      spentUSD: 41.5,
      limitUSD: 50,
      resetsAt: "2026-02-01T00:00:00Z",
      hard: true,
      bad: Number.NaN,
    };
    expect(notificationBody(sampleEvent({ details })).event.details).toEqual({
      spentUSD: 41.5,
      limitUSD: 50,
      resetsAt: "2026-02-01T00:00:00Z",
      hard: true,
    });
  });

  it("has a summary for every type", () => {
    for (const type of NOTIFICATION_TYPES)
      expect(summaryLine(sampleEvent({ type }))).toMatch(new RegExp(`^${type} `));
  });

  it("names a pool namespace/name", () => {
    expect(poolKey({ namespace: "team-a", name: "gpt" })).toBe("team-a/gpt");
  });
});
