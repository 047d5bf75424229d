import { describe, expect, it } from "vitest";
import { UsageMeter } from "../../../src/proxy/usage.ts";

/** Feeds `chunks` to a fresh meter for `contentType` and returns its count. */
function meter(contentType: string | undefined, ...chunks: Array<string | Buffer>): number {
  const m = new UsageMeter(contentType);
  for (const c of chunks) m.push(typeof c === "string" ? Buffer.from(c, "utf8") : c);
  return m.tokens();
}

/** The same bytes split at every offset, one chunk per byte. */
function byteByByte(text: string): Buffer[] {
  const bytes = Buffer.from(text, "utf8");
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

const JSON_TYPE = "application/json";
const SSE_TYPE = "text/event-stream";

describe("UsageMeter: JSON answers", () => {
  it("reads OpenAI's usage.total_tokens", () => {
    const body = JSON.stringify({
      id: "chatcmpl-1",
      choices: [{ message: { role: "assistant", content: "hi" } }],
      usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 },
    });
    expect(meter(JSON_TYPE, body)).toBe(21);
  });

  it("adds prompt and completion tokens when total_tokens is missing", () => {
    expect(meter(JSON_TYPE, JSON.stringify({ usage: { prompt_tokens: 9, completion_tokens: 12 } }))).toBe(21);
    expect(meter(JSON_TYPE, JSON.stringify({ usage: { prompt_tokens: 9 } }))).toBe(9);
  });

  it("prefers total_tokens over the sum when both are given", () => {
    expect(
      meter(
        JSON_TYPE,
        JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 50 } }),
      ),
    ).toBe(50);
  });

  it("reads Anthropic's input + output tokens", () => {
    const body = JSON.stringify({
      type: "message",
      content: [{ type: "text", text: "hi" }],
      usage: { input_tokens: 25, output_tokens: 15 },
    });
    expect(meter(JSON_TYPE, body)).toBe(40);
  });

  it("counts Anthropic's cache creation and cache read tokens as input", () => {
    const body = JSON.stringify({
      usage: {
        input_tokens: 25,
        cache_creation_input_tokens: 100,
        cache_read_input_tokens: 1000,
        output_tokens: 15,
      },
    });
    expect(meter(JSON_TYPE, body)).toBe(1140);
  });

  it("reads Gemini's usageMetadata.totalTokenCount", () => {
    const body = JSON.stringify({
      candidates: [{ content: { parts: [{ text: "hi" }] } }],
      usageMetadata: { promptTokenCount: 8, candidatesTokenCount: 4, totalTokenCount: 12 },
    });
    expect(meter(JSON_TYPE, body)).toBe(12);
  });

  it("reads a JSON body that arrived in many chunks, including byte by byte", () => {
    const body = JSON.stringify({ usage: { total_tokens: 77 }, text: "héllo 日本 ✓" });
    expect(meter(JSON_TYPE, body.slice(0, 5), body.slice(5, 20), body.slice(20))).toBe(77);
    expect(meter(JSON_TYPE, ...byteByByte(body))).toBe(77);
  });

  it("accepts JSON content types with parameters and in any case", () => {
    const body = JSON.stringify({ usage: { total_tokens: 5 } });
    expect(meter("application/json; charset=utf-8", body)).toBe(5);
    expect(meter("Application/JSON", body)).toBe(5);
    expect(meter("application/vnd.api+json", body)).toBe(5);
  });

  it("counts 0 when the answer says nothing about usage", () => {
    expect(meter(JSON_TYPE, JSON.stringify({ data: [{ id: "gpt-4o" }] }))).toBe(0);
    expect(meter(JSON_TYPE, JSON.stringify({ usage: {} }))).toBe(0);
    expect(meter(JSON_TYPE, JSON.stringify([{ usage: { total_tokens: 3 } }]))).toBe(0);
    expect(meter(JSON_TYPE)).toBe(0);
  });

  it("ignores counts that are not positive finite numbers", () => {
    expect(meter(JSON_TYPE, JSON.stringify({ usage: { total_tokens: "21" } }))).toBe(0);
    expect(meter(JSON_TYPE, JSON.stringify({ usage: { total_tokens: -4 } }))).toBe(0);
    expect(meter(JSON_TYPE, JSON.stringify({ usage: { input_tokens: 10, output_tokens: null } }))).toBe(10);
  });

  it("counts 0 for malformed JSON", () => {
    expect(meter(JSON_TYPE, '{"usage": {"total_tokens": 21}')).toBe(0);
    expect(meter(JSON_TYPE, "<html><body>502 Bad Gateway</body></html>")).toBe(0);
  });

  it("counts 0 for content types that are neither JSON nor an event stream", () => {
    const body = JSON.stringify({ usage: { total_tokens: 21 } });
    expect(meter("text/plain", body)).toBe(0);
    expect(meter("text/html", body)).toBe(0);
    expect(meter("application/octet-stream", body)).toBe(0);
    expect(meter(undefined, body)).toBe(0);
    expect(meter("", body)).toBe(0);
  });

  it("does not count a JSON body larger than 8 MiB", () => {
    const head = '{"usage":{"total_tokens":21},"pad":"';
    const pad = "x".repeat(8 * 1024 * 1024);
    const tail = '"}';
    expect(meter(JSON_TYPE, head, pad, tail)).toBe(0);
    // Nor when later chunks would have been small again.
    expect(meter(JSON_TYPE, head, pad, tail, "{}", "x")).toBe(0);
  });

  it("counts a JSON body of exactly 8 MiB", () => {
    const head = '{"usage":{"total_tokens":21},"pad":"';
    const tail = '"}';
    const pad = "x".repeat(8 * 1024 * 1024 - head.length - tail.length);
    expect(meter(JSON_TYPE, head, pad, tail)).toBe(21);
  });

  it("gives the same count when asked twice", () => {
    const m = new UsageMeter(JSON_TYPE);
    m.push(Buffer.from(JSON.stringify({ usage: { total_tokens: 21 } })));
    expect(m.tokens()).toBe(21);
    expect(m.tokens()).toBe(21);
  });
});

/** One SSE event per data object, with an optional event name, as providers write them. */
function sse(events: Array<{ event?: string; data: unknown }>, eol = "\n"): string {
  return events
    .map(
      ({ event, data }) =>
        `${event ? `event: ${event}${eol}` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}${eol}${eol}`,
    )
    .join("");
}

const OPENAI_STREAM = sse([
  {
    data: {
      id: "c1",
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { role: "assistant", content: "" } }],
      usage: null,
    },
  },
  { data: { id: "c1", choices: [{ index: 0, delta: { content: "Hello, wörld 日本" } }], usage: null } },
  { data: { id: "c1", choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null } },
  { data: { id: "c1", choices: [], usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } } },
  { data: "[DONE]" },
]);

const ANTHROPIC_STREAM = sse([
  {
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: "msg_1",
        type: "message",
        role: "assistant",
        usage: { input_tokens: 25, output_tokens: 1 },
      },
    },
  },
  {
    event: "content_block_start",
    data: { type: "content_block_start", index: 0, content_block: { type: "text" } },
  },
  { event: "ping", data: { type: "ping" } },
  {
    event: "content_block_delta",
    data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Héllo ✓" } },
  },
  { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
  {
    event: "message_delta",
    data: { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 15 } },
  },
  { event: "message_stop", data: { type: "message_stop" } },
]);

const GEMINI_STREAM = sse(
  [10, 15, 23].map((total, i) => ({
    data: {
      candidates: [{ content: { parts: [{ text: `part ${i} ü` }], role: "model" } }],
      usageMetadata: { promptTokenCount: 8, candidatesTokenCount: total - 8, totalTokenCount: total },
    },
  })),
  "\r\n",
);

describe("UsageMeter: event streams", () => {
  it("reads OpenAI's final chunk with usage, before [DONE]", () => {
    expect(meter(SSE_TYPE, OPENAI_STREAM)).toBe(21);
  });

  it("adds Anthropic's message_start input tokens to message_delta's output tokens", () => {
    expect(meter(SSE_TYPE, ANTHROPIC_STREAM)).toBe(40);
  });

  it("counts Anthropic's cache tokens from message_start", () => {
    const stream = sse([
      {
        event: "message_start",
        data: {
          type: "message_start",
          message: {
            usage: {
              input_tokens: 5,
              cache_creation_input_tokens: 20,
              cache_read_input_tokens: 100,
              output_tokens: 1,
            },
          },
        },
      },
      { event: "message_delta", data: { type: "message_delta", usage: { output_tokens: 30 } } },
    ]);
    expect(meter(SSE_TYPE, stream)).toBe(155);
  });

  it("takes the latest of Anthropic's growing output counts, not their sum", () => {
    const stream = sse([
      { data: { type: "message_start", message: { usage: { input_tokens: 10, output_tokens: 1 } } } },
      { data: { type: "message_delta", usage: { output_tokens: 5 } } },
      { data: { type: "message_delta", usage: { output_tokens: 9 } } },
    ]);
    expect(meter(SSE_TYPE, stream)).toBe(19);
  });

  it("takes the largest of Gemini's running totals, not their sum", () => {
    expect(meter(SSE_TYPE, GEMINI_STREAM)).toBe(23);
  });

  it("never lets a running total shrink", () => {
    const stream = sse([
      { data: { usageMetadata: { totalTokenCount: 30 } } },
      { data: { usageMetadata: { totalTokenCount: 12 } } },
    ]);
    expect(meter(SSE_TYPE, stream)).toBe(30);
  });

  it("reads events with CRLF line endings", () => {
    expect(meter(SSE_TYPE, OPENAI_STREAM.replaceAll("\n", "\r\n"))).toBe(21);
    expect(meter(SSE_TYPE, ANTHROPIC_STREAM.replaceAll("\n", "\r\n"))).toBe(40);
    expect(meter(SSE_TYPE, GEMINI_STREAM)).toBe(23);
  });

  it("reads `data:` without a space after the colon", () => {
    expect(meter(SSE_TYPE, 'data:{"usage":{"total_tokens":7}}\n\n')).toBe(7);
  });

  it("accepts an event-stream content type with parameters", () => {
    expect(meter("text/event-stream; charset=utf-8", OPENAI_STREAM)).toBe(21);
  });

  describe.each<[string, string, number]>([
    ["OpenAI", OPENAI_STREAM, 21],
    ["Anthropic", ANTHROPIC_STREAM, 40],
    ["Gemini (CRLF)", GEMINI_STREAM, 23],
    ["Anthropic (CRLF)", ANTHROPIC_STREAM.replaceAll("\n", "\r\n"), 40],
  ])("%s events split across chunks", (_name, stream, expected) => {
    it("gives the same count fed byte by byte (splitting multi-byte characters too)", () => {
      expect(meter(SSE_TYPE, ...byteByByte(stream))).toBe(expected);
    });

    it("gives the same count split in two at every offset", () => {
      const bytes = Buffer.from(stream, "utf8");
      for (let at = 0; at <= bytes.length; at++) {
        expect(meter(SSE_TYPE, bytes.subarray(0, at), bytes.subarray(at)), `split at ${at}`).toBe(expected);
      }
    });

    it("gives the same count in chunks of irregular sizes", () => {
      const bytes = Buffer.from(stream, "utf8");
      for (const size of [2, 3, 7, 13, 64]) {
        const chunks: Buffer[] = [];
        for (let i = 0, n = 0; i < bytes.length; n++) {
          const len = 1 + ((n * size) % 17);
          chunks.push(bytes.subarray(i, i + len));
          i += len;
        }
        expect(meter(SSE_TYPE, ...chunks), `pattern ${size}`).toBe(expected);
      }
    });
  });

  it("counts a final event that has no trailing blank line only once its line ends", () => {
    const m = new UsageMeter(SSE_TYPE);
    m.push(Buffer.from('data: {"usage":{"total_tokens":21}}'));
    expect(m.tokens()).toBe(0);
    m.push(Buffer.from("\n"));
    expect(m.tokens()).toBe(21);
  });

  it("counts 0 for a stream without usage", () => {
    const stream = sse([
      { data: { choices: [{ delta: { content: "hi" } }] } },
      { data: { choices: [{ delta: { content: "there" } }], usage: null } },
      { data: "[DONE]" },
    ]);
    expect(meter(SSE_TYPE, stream)).toBe(0);
  });

  it("still reads a usage elsewhere in an event that also says usage: null", () => {
    const stream = sse([
      { data: { type: "response.in_progress", usage: null, response: { usage: { total_tokens: 7 } } } },
      { data: '{"usage":null,"note":"usage:null"}' },
    ]);
    expect(meter(SSE_TYPE, stream)).toBe(7);
  });

  it("skips malformed event data and keeps reading", () => {
    const stream =
      'data: {"usage": {"total_tokens": 99}\n\n' + // cut short: not JSON
      "data: usage is not json\n\n" +
      ": a comment about usage\n\n" +
      'event: usage\nid: usage\n\ndata: {"usage":{"total_tokens":21}}\n\n';
    expect(meter(SSE_TYPE, stream)).toBe(21);
  });

  it("ignores usage on lines other than data:", () => {
    expect(meter(SSE_TYPE, 'event: {"usage":{"total_tokens":21}}\n\n')).toBe(0);
  });

  it("drops a line that runs on for well over 1 MiB across chunks, without losing the events after it", () => {
    const huge = `data: {"usage":{"total_tokens":500},"pad":"${"x".repeat(2 * 1024 * 1024)}"}`;
    const m = new UsageMeter(SSE_TYPE);
    // The long line arrives in pieces, as it would from a socket.
    const bytes = Buffer.from(`${huge}\n\n`);
    for (let i = 0; i < bytes.length; i += 64 * 1024) m.push(bytes.subarray(i, i + 64 * 1024));
    m.push(Buffer.from('data: {"usage":{"total_tokens":21}}\n\n'));
    expect(m.tokens()).toBe(21);
  });
});

describe("UsageMeter on OpenAI's Responses API stream", () => {
  it("reads the usage of the response.completed event", () => {
    const meter = new UsageMeter("text/event-stream");
    meter.push(
      Buffer.from(
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n' +
          'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":12,"output_tokens":30,"total_tokens":42}}}\n\n',
      ),
    );
    expect(meter.tokens()).toBe(42);
  });

  it("does not meter JSON lines (application/x-ndjson)", () => {
    const meter = new UsageMeter("application/x-ndjson");
    meter.push(Buffer.from('{"usage":{"total_tokens":9}}\n'));
    expect(meter.tokens()).toBe(0);
  });
});

/** Feeds `chunks` to a fresh meter for `contentType` and returns its tokens by kind (and its total). */
function kinds(contentType: string, ...chunks: Array<string | Buffer>) {
  const m = new UsageMeter(contentType);
  for (const c of chunks) m.push(typeof c === "string" ? Buffer.from(c, "utf8") : c);
  return { usage: m.usage(), tokens: m.tokens() };
}

type Kinds = { inputTokens: number; cachedInputTokens: number; outputTokens: number } | undefined;

/** Answers as the providers write them (shapes as in test/fakes and the providers' references). */
const OPENAI_CHAT = JSON.stringify({
  id: "chatcmpl-AbC",
  object: "chat.completion",
  model: "gpt-4o-mini-2024-07-18",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: "stop" }],
  usage: {
    prompt_tokens: 2006,
    completion_tokens: 300,
    total_tokens: 2306,
    prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
  },
});

const OPENAI_CHAT_STREAM = sse([
  {
    data: {
      id: "c1",
      object: "chat.completion.chunk",
      choices: [{ delta: { role: "assistant" } }],
      usage: null,
    },
  },
  { data: { id: "c1", choices: [{ delta: { content: "Hi ✓" } }], usage: null } },
  { data: { id: "c1", choices: [{ delta: {}, finish_reason: "stop" }], usage: null } },
  {
    data: {
      id: "c1",
      choices: [],
      usage: {
        prompt_tokens: 1200,
        completion_tokens: 12,
        total_tokens: 1212,
        prompt_tokens_details: { cached_tokens: 1152 },
      },
    },
  },
  { data: "[DONE]" },
]);

const RESPONSES = JSON.stringify({
  id: "resp_1",
  object: "response",
  status: "completed",
  model: "gpt-4.1-mini-2025-04-14",
  output: [{ type: "message", content: [{ type: "output_text", text: "Hi" }] }],
  usage: {
    input_tokens: 1500,
    input_tokens_details: { cached_tokens: 1024 },
    output_tokens: 80,
    output_tokens_details: { reasoning_tokens: 32 },
    total_tokens: 1580,
  },
});

const RESPONSES_STREAM = sse([
  {
    event: "response.created",
    data: { type: "response.created", response: { id: "resp_1", status: "in_progress", usage: null } },
  },
  { event: "response.output_text.delta", data: { type: "response.output_text.delta", delta: "Hi" } },
  {
    event: "response.completed",
    data: {
      type: "response.completed",
      response: { id: "resp_1", status: "completed", usage: JSON.parse(RESPONSES).usage },
    },
  },
]);

const ANTHROPIC_MESSAGE = JSON.stringify({
  id: "msg_01",
  type: "message",
  role: "assistant",
  model: "claude-sonnet-4-5-20250929",
  content: [{ type: "text", text: "Hi" }],
  stop_reason: "end_turn",
  usage: {
    input_tokens: 21,
    cache_creation_input_tokens: 188,
    cache_read_input_tokens: 1800,
    output_tokens: 393,
    service_tier: "standard",
  },
});

const ANTHROPIC_CACHED_STREAM = sse([
  {
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: "msg_1",
        model: "claude-sonnet-4-5-20250929",
        usage: {
          input_tokens: 7,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 1500,
          output_tokens: 1,
        },
      },
    },
  },
  {
    event: "content_block_delta",
    data: { type: "content_block_delta", delta: { type: "text_delta", text: "Hi" } },
  },
  {
    event: "message_delta",
    data: { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 9 } },
  },
  { event: "message_delta", data: { type: "message_delta", delta: {}, usage: { output_tokens: 42 } } },
  { event: "message_stop", data: { type: "message_stop" } },
]);

const GEMINI_ANSWER = JSON.stringify({
  candidates: [{ content: { parts: [{ text: "Hi" }], role: "model" }, finishReason: "STOP" }],
  usageMetadata: {
    promptTokenCount: 2100,
    cachedContentTokenCount: 2048,
    candidatesTokenCount: 40,
    thoughtsTokenCount: 120,
    totalTokenCount: 2260,
  },
  modelVersion: "gemini-2.5-flash",
});

const GEMINI_THINKING_STREAM = sse(
  [
    {
      promptTokenCount: 1100,
      cachedContentTokenCount: 1024,
      thoughtsTokenCount: 24,
      candidatesTokenCount: 3,
    },
    {
      promptTokenCount: 1100,
      cachedContentTokenCount: 1024,
      thoughtsTokenCount: 24,
      candidatesTokenCount: 9,
    },
    {
      promptTokenCount: 1100,
      cachedContentTokenCount: 1024,
      thoughtsTokenCount: 24,
      candidatesTokenCount: 14,
    },
  ].map((meta) => ({
    data: {
      candidates: [{ content: { parts: [{ text: "ü" }], role: "model" } }],
      usageMetadata: {
        ...meta,
        totalTokenCount: meta.promptTokenCount + meta.thoughtsTokenCount + meta.candidatesTokenCount,
      },
    },
  })),
  "\r\n",
);

describe("UsageMeter.usage: tokens by kind, for pricing", () => {
  it.each<[string, string, string, Kinds, number]>([
    [
      "OpenAI chat completion: prompt (cached included), cached, completion",
      JSON_TYPE,
      OPENAI_CHAT,
      { inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 },
      2306,
    ],
    [
      "OpenAI chat stream with include_usage: the last chunk's usage",
      SSE_TYPE,
      OPENAI_CHAT_STREAM,
      { inputTokens: 1200, cachedInputTokens: 1152, outputTokens: 12 },
      1212,
    ],
    [
      "OpenAI chat stream without include_usage: nothing known",
      SSE_TYPE,
      sse([{ data: { choices: [{ delta: { content: "hi" } }] } }, { data: "[DONE]" }]),
      undefined,
      0,
    ],
    [
      "OpenAI chat without prompt_tokens_details: no cached tokens",
      JSON_TYPE,
      JSON.stringify({ usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } }),
      { inputTokens: 9, cachedInputTokens: 0, outputTokens: 12 },
      21,
    ],
    [
      "OpenAI embeddings: input only",
      JSON_TYPE,
      JSON.stringify({ object: "list", data: [], usage: { prompt_tokens: 8, total_tokens: 8 } }),
      { inputTokens: 8, cachedInputTokens: 0, outputTokens: 0 },
      8,
    ],
    [
      "OpenAI Responses API answer: input (cached included), cached, output",
      JSON_TYPE,
      RESPONSES,
      { inputTokens: 1500, cachedInputTokens: 1024, outputTokens: 80 },
      1580,
    ],
    [
      "OpenAI Responses API stream: response.completed's usage",
      SSE_TYPE,
      RESPONSES_STREAM,
      { inputTokens: 1500, cachedInputTokens: 1024, outputTokens: 80 },
      1580,
    ],
    [
      "Anthropic message: input + cache creation + cache read, the reads cached",
      JSON_TYPE,
      ANTHROPIC_MESSAGE,
      { inputTokens: 2009, cachedInputTokens: 1800, outputTokens: 393 },
      2402,
    ],
    [
      "Anthropic message without cache fields",
      JSON_TYPE,
      JSON.stringify({ type: "message", usage: { input_tokens: 25, output_tokens: 15 } }),
      { inputTokens: 25, cachedInputTokens: 0, outputTokens: 15 },
      40,
    ],
    [
      "Anthropic stream: message_start's input, message_delta's latest output",
      SSE_TYPE,
      ANTHROPIC_CACHED_STREAM,
      { inputTokens: 1507, cachedInputTokens: 1500, outputTokens: 42 },
      1549,
    ],
    [
      "Anthropic stream without cache tokens",
      SSE_TYPE,
      ANTHROPIC_STREAM,
      { inputTokens: 25, cachedInputTokens: 0, outputTokens: 15 },
      40,
    ],
    [
      "Gemini answer: prompt (cached included), cached content, candidates + thoughts",
      JSON_TYPE,
      GEMINI_ANSWER,
      { inputTokens: 2100, cachedInputTokens: 2048, outputTokens: 160 },
      2260,
    ],
    [
      "Gemini stream: the running totals' last",
      SSE_TYPE,
      GEMINI_THINKING_STREAM,
      { inputTokens: 1100, cachedInputTokens: 1024, outputTokens: 38 },
      1138,
    ],
    [
      "Gemini stream without cache or thoughts",
      SSE_TYPE,
      GEMINI_STREAM,
      { inputTokens: 8, cachedInputTokens: 0, outputTokens: 15 },
      23,
    ],
    ["a model list: nothing known", JSON_TYPE, JSON.stringify({ data: [{ id: "gpt-4o" }] }), undefined, 0],
    ["malformed JSON: nothing known", JSON_TYPE, '{"usage":{"prompt_tokens":3', undefined, 0],
    ["text: nothing known", "text/plain", OPENAI_CHAT, undefined, 0],
  ])("%s", (_name, contentType, body, expected, tokens) => {
    expect(kinds(contentType, body)).toEqual({ usage: expected, tokens });
  });

  describe.each<[string, string, string]>([
    ["OpenAI chat stream", SSE_TYPE, OPENAI_CHAT_STREAM],
    ["Responses API stream", SSE_TYPE, RESPONSES_STREAM],
    ["Anthropic stream", SSE_TYPE, ANTHROPIC_CACHED_STREAM],
    ["Anthropic stream (CRLF)", SSE_TYPE, ANTHROPIC_CACHED_STREAM.replaceAll("\n", "\r\n")],
    ["Gemini stream (CRLF)", SSE_TYPE, GEMINI_THINKING_STREAM],
    ["Anthropic message", JSON_TYPE, ANTHROPIC_MESSAGE],
  ])("%s split across chunks", (_name, contentType, body) => {
    const whole = kinds(contentType, body);

    it("gives the same kinds fed byte by byte", () => {
      expect(kinds(contentType, ...byteByByte(body))).toEqual(whole);
    });

    it("gives the same kinds split in two at every offset", () => {
      const bytes = Buffer.from(body, "utf8");
      for (let at = 0; at <= bytes.length; at += 7) {
        expect(kinds(contentType, bytes.subarray(0, at), bytes.subarray(at)), `split at ${at}`).toEqual(
          whole,
        );
      }
    });
  });

  it("keeps the running maxima: a later, smaller Gemini count does not shrink them", () => {
    const stream = sse([
      { data: { usageMetadata: { promptTokenCount: 30, candidatesTokenCount: 9, totalTokenCount: 39 } } },
      { data: { usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 2, totalTokenCount: 14 } } },
    ]);
    expect(kinds(SSE_TYPE, stream).usage).toEqual({ inputTokens: 30, cachedInputTokens: 0, outputTokens: 9 });
  });

  it("never says more cached than input tokens", () => {
    const body = JSON.stringify({ usageMetadata: { cachedContentTokenCount: 50, candidatesTokenCount: 2 } });
    expect(kinds(JSON_TYPE, body).usage).toEqual({ inputTokens: 50, cachedInputTokens: 50, outputTokens: 2 });
  });

  it("says what a stream that broke off had said so far", () => {
    const cut = ANTHROPIC_CACHED_STREAM.slice(0, ANTHROPIC_CACHED_STREAM.indexOf("event: message_delta"));
    expect(kinds(SSE_TYPE, cut).usage).toEqual({
      inputTokens: 1507,
      cachedInputTokens: 1500,
      outputTokens: 1,
    });
  });

  it("ignores counts that are not positive finite numbers", () => {
    const body = JSON.stringify({
      usage: { prompt_tokens: "9", completion_tokens: -3, prompt_tokens_details: { cached_tokens: null } },
    });
    expect(kinds(JSON_TYPE, body).usage).toEqual({ inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 });
  });

  it("gives the same kinds when asked twice, and after tokens()", () => {
    const m = new UsageMeter(JSON_TYPE);
    m.push(Buffer.from(OPENAI_CHAT));
    expect(m.tokens()).toBe(2306);
    const first = m.usage();
    expect(m.usage()).toEqual(first);
    expect(first).toEqual({ inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 });
  });
});
