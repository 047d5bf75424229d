import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createLogger, isoTimeCached, scrubSecrets } from "../../src/log.ts";

describe("isoTimeCached", () => {
  it("formats like pino's isoTime and changes with the millisecond", () => {
    let now = Date.UTC(2026, 10, 23, 20, 0, 0, 123);
    const time = isoTimeCached(() => now);
    expect(time()).toBe(`,"time":"2026-11-23T20:00:00.123Z"`);
    expect(time()).toBe(`,"time":"2026-11-23T20:00:00.123Z"`);
    now += 1;
    expect(time()).toBe(`,"time":"2026-11-23T20:00:00.124Z"`);
    expect(pino.stdTimeFunctions.isoTime().startsWith(',"time":"')).toBe(true);
  });
});

describe("createLogger", () => {
  it("writes JSON lines with an ISO time and scrubs key-shaped strings", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ destination: destination as never });
    logger.info({ key: "sk-test-abcdefghijklmnop" }, "used sk-live-abcdefghijklmnopqrstu here");
    const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(line["time"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(line["key"]).toBe("[REDACTED]");
    expect(line["msg"]).toBe("used [REDACTED] here");
    expect(scrubSecrets("Bearer abcdefghijk")).toBe("Bearer [REDACTED]");
  });
});
