/**
 * How the client turns what a call with a key produced (a returned answer, a thrown SDK or
 * network error, a parsed success) into a report and a retry decision.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  answerOfError,
  answerUsage,
  isNetworkError,
  isRetryableStatus,
  rateLimitHeaders,
  reportOfAnswer,
  usageTokens,
  verdictOfError,
  verdictOfValue,
} from "../../../src/client/outcome.ts";

const KEY = "sk-test-client-outcome-secret-0001";

const openaiRateLimit = () =>
  OpenAI.APIError.generate(
    429,
    { error: { message: "Rate limit reached", type: "requests", param: null, code: "rate_limit_exceeded" } },
    undefined,
    new Headers({ "retry-after": "20", "x-ratelimit-remaining-requests": "0", "x-request-id": "req_1" }),
  );
const anthropicOverloaded = () =>
  Anthropic.APIError.generate(
    529,
    { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
    undefined,
    new Headers({ "anthropic-ratelimit-requests-remaining": "10", "request-id": "req_2" }),
  );
const fetchFailed = (code: string) =>
  new TypeError("fetch failed", { cause: Object.assign(new Error(`connect ${code}`), { code }) });

describe("isRetryableStatus", () => {
  it.each([
    [401, true, "the key was refused: another may work"],
    [403, true, "the key was refused: another may work"],
    [429, true, "the key is rate-limited"],
    [500, true, "a server error"],
    [503, true, "a server error"],
    [529, true, "Anthropic overloaded"],
    [400, false, "the request is wrong for every key"],
    [404, false, "the request is wrong for every key"],
    [422, false, "the request is wrong for every key"],
    [200, false, "a success"],
  ])("%i: %s (%s)", (status, retry) => {
    expect(isRetryableStatus(status)).toBe(retry);
  });
});

describe("rateLimitHeaders", () => {
  it("keeps rate-limit and retry headers of every provider, lower-cased, and drops everything else", () => {
    const headers = new Headers({
      "Retry-After": "20",
      "retry-after-ms": "20000",
      "x-ratelimit-remaining-tokens": "10",
      "anthropic-ratelimit-tokens-reset": "2030-01-01T00:00:00Z",
      "ratelimitbysize-remaining": "5",
      "x-should-retry": "true",
      authorization: `Bearer ${KEY}`,
      "x-api-key": KEY,
      "set-cookie": "session=1",
      "content-type": "application/json",
    });
    expect(rateLimitHeaders(headers)).toEqual({
      "retry-after": "20",
      "retry-after-ms": "20000",
      "x-ratelimit-remaining-tokens": "10",
      "anthropic-ratelimit-tokens-reset": "2030-01-01T00:00:00Z",
      "ratelimitbysize-remaining": "5",
      "x-should-retry": "true",
    });
  });

  it("reads node:http-style records (numbers, arrays) and cuts values at 1024 characters", () => {
    expect(
      rateLimitHeaders({
        "Retry-After": 3,
        "x-ratelimit-limit-requests": ["500", "600"],
        "x-ratelimit-reset-tokens": "x".repeat(2000),
        "x-ratelimit-missing": undefined,
        Authorization: `Bearer ${KEY}`,
      }),
    ).toEqual({
      "retry-after": "3",
      "x-ratelimit-limit-requests": "500, 600",
      "x-ratelimit-reset-tokens": "x".repeat(1024),
    });
  });
});

describe("answerOfError", () => {
  it.each([
    {
      name: "the OpenAI SDK's APIError: status, headers, and the body's error object put back in its envelope",
      err: openaiRateLimit(),
      want: {
        statusCode: 429,
        body: {
          error: {
            message: "Rate limit reached",
            type: "requests",
            param: null,
            code: "rate_limit_exceeded",
          },
        },
      },
    },
    {
      name: "the Anthropic SDK's APIError: its error is the whole body",
      err: anthropicOverloaded(),
      want: {
        statusCode: 529,
        body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
      },
    },
    {
      name: "an axios-style error: status, headers and data on its response",
      err: Object.assign(new Error("Request failed"), {
        response: { status: 503, headers: { "retry-after": "1" }, data: { error: "busy" } },
      }),
      want: { statusCode: 503, headers: { "retry-after": "1" }, body: { error: "busy" } },
    },
    {
      name: "a got-style error: statusCode on the error",
      err: Object.assign(new Error("Response code 500"), { statusCode: 500, headers: {} }),
      want: { statusCode: 500 },
    },
  ])("$name", ({ err, want }) => {
    expect(answerOfError(err)).toMatchObject(want);
  });

  it.each([
    {
      name: "an SDK connection error (no status)",
      err: new OpenAI.APIConnectionError({ message: "Connection error." }),
    },
    { name: "a plain error", err: new Error("boom") },
    { name: "a thrown string", err: "boom" },
    {
      name: "an error whose status is not an HTTP status",
      err: Object.assign(new Error("x"), { status: "failed" }),
    },
  ])("nothing for $name", ({ err }) => {
    expect(answerOfError(err)).toBeUndefined();
  });
});

describe("isNetworkError", () => {
  it.each([
    { name: "fetch's TypeError with ECONNREFUSED", err: fetchFailed("ECONNREFUSED"), network: true },
    {
      name: "fetch's TypeError with an undici socket error",
      err: fetchFailed("UND_ERR_SOCKET"),
      network: true,
    },
    { name: "fetch's TypeError without a known cause", err: new TypeError("fetch failed"), network: true },
    {
      name: "a bare ECONNRESET",
      err: Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      network: true,
    },
    {
      name: "ETIMEDOUT deep in an AggregateError",
      err: new AggregateError([fetchFailed("ETIMEDOUT")]),
      network: true,
    },
    { name: "AbortSignal.timeout()", err: new DOMException("timed out", "TimeoutError"), network: true },
    {
      name: "the OpenAI SDK's connection error",
      err: new OpenAI.APIConnectionError({ message: "Connection error." }),
      network: true,
    },
    { name: "the Anthropic SDK's timeout", err: new Anthropic.APIConnectionTimeoutError(), network: true },
    { name: "the caller's abort", err: new DOMException("aborted", "AbortError"), network: false },
    { name: "a bug in the caller's code", err: new TypeError("x is not a function"), network: false },
    { name: "a thrown string", err: "ECONNRESET", network: false },
  ])("$name: $network", ({ err, network }) => {
    expect(isNetworkError(err)).toBe(network);
  });
});

describe("usageTokens", () => {
  it.each([
    {
      name: "OpenAI chat usage",
      value: { usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } },
      tokens: 12,
    },
    { name: "Anthropic message usage", value: { usage: { input_tokens: 9, output_tokens: 3 } }, tokens: 12 },
    { name: "Gemini usageMetadata", value: { usageMetadata: { totalTokenCount: 40 } }, tokens: 40 },
    { name: "an answer without usage", value: { choices: [] }, tokens: undefined },
    { name: "a string", value: "hello", tokens: undefined },
    {
      name: "an HTTP answer",
      value: { status: 200, headers: {}, usage: { total_tokens: 3 } },
      tokens: undefined,
    },
  ])("$name: $tokens", ({ value, tokens }) => {
    expect(usageTokens(value)).toBe(tokens);
  });
});

describe("answerUsage: a parsed answer's model and tokens by kind", () => {
  it.each([
    {
      name: "OpenAI chat completion",
      value: {
        model: "gpt-4o-mini-2024-07-18",
        usage: {
          prompt_tokens: 2006,
          completion_tokens: 300,
          total_tokens: 2306,
          prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
        },
      },
      usage: {
        model: "gpt-4o-mini-2024-07-18",
        inputTokens: 2006,
        cachedInputTokens: 1920,
        outputTokens: 300,
      },
    },
    {
      name: "OpenAI embeddings",
      value: { model: "text-embedding-3-small", usage: { prompt_tokens: 8, total_tokens: 8 } },
      usage: { model: "text-embedding-3-small", inputTokens: 8 },
    },
    {
      name: "OpenAI Responses API",
      value: {
        model: "gpt-4.1-mini-2025-04-14",
        usage: {
          input_tokens: 1500,
          input_tokens_details: { cached_tokens: 1024 },
          output_tokens: 80,
          total_tokens: 1580,
        },
      },
      usage: {
        model: "gpt-4.1-mini-2025-04-14",
        inputTokens: 1500,
        cachedInputTokens: 1024,
        outputTokens: 80,
      },
    },
    {
      name: "Anthropic message: cache writes and reads are input, the reads cached",
      value: {
        model: "claude-sonnet-4-5-20250929",
        usage: {
          input_tokens: 21,
          cache_creation_input_tokens: 188,
          cache_read_input_tokens: 1800,
          output_tokens: 393,
        },
      },
      usage: {
        model: "claude-sonnet-4-5-20250929",
        inputTokens: 2009,
        cachedInputTokens: 1800,
        outputTokens: 393,
      },
    },
    {
      name: "Gemini: thoughts are output, modelVersion the model",
      value: {
        modelVersion: "gemini-2.5-flash",
        usageMetadata: {
          promptTokenCount: 2100,
          cachedContentTokenCount: 2048,
          candidatesTokenCount: 40,
          thoughtsTokenCount: 120,
          totalTokenCount: 2260,
        },
      },
      usage: { model: "gemini-2.5-flash", inputTokens: 2100, cachedInputTokens: 2048, outputTokens: 160 },
    },
    {
      name: "more cached than input tokens is raised to a consistent input",
      value: { usageMetadata: { cachedContentTokenCount: 50, candidatesTokenCount: 2 } },
      usage: { inputTokens: 50, cachedInputTokens: 50, outputTokens: 2 },
    },
    { name: "a model without usage", value: { model: "gpt-4o", choices: [] }, usage: { model: "gpt-4o" } },
    { name: "a model name too long to report", value: { model: "m".repeat(201) }, usage: undefined },
    { name: "an answer without usage", value: { choices: [] }, usage: undefined },
    { name: "a string", value: "hello", usage: undefined },
    {
      name: "an HTTP answer",
      value: { status: 200, headers: {}, model: "x", usage: { prompt_tokens: 3 } },
      usage: undefined,
    },
  ])("$name", ({ value, usage }) => {
    expect(answerUsage(value)).toEqual(usage);
  });

  it("is in a success's verdict, beside its total tokens", async () => {
    const value = { model: "claude-haiku-4-5", usage: { input_tokens: 9, output_tokens: 3 } };
    expect(await verdictOfValue(value, isRetryableStatus)).toEqual({
      report: { outcome: "success" },
      retry: false,
      tokens: 12,
      usage: { model: "claude-haiku-4-5", inputTokens: 9, outputTokens: 3 },
    });
  });
});

describe("reportOfAnswer", () => {
  it("reads a fetch Response's error body from a clone: the caller can still read it", async () => {
    const body = JSON.stringify({ error: { code: "insufficient_quota", type: "insufficient_quota" } });
    const res = new Response(body, { status: 429, headers: { "retry-after": "1", authorization: KEY } });
    expect(await reportOfAnswer(res)).toEqual({ statusCode: 429, headers: { "retry-after": "1" }, body });
    expect(await res.text()).toBe(body);
  });

  it("does not read a successful Response's body", async () => {
    const res = new Response("x".repeat(100), {
      status: 200,
      headers: { "x-ratelimit-remaining-requests": "4" },
    });
    expect(await reportOfAnswer(res)).toEqual({
      statusCode: 200,
      headers: { "x-ratelimit-remaining-requests": "4" },
    });
    expect(res.bodyUsed).toBe(false);
  });

  it("sends a given body as it is, and never a stream", async () => {
    expect(await reportOfAnswer({ statusCode: 429, body: { error: { code: "x" } } })).toEqual({
      statusCode: 429,
      headers: {},
      body: { error: { code: "x" } },
    });
    expect(await reportOfAnswer({ statusCode: 500, body: new ReadableStream() })).toEqual({
      statusCode: 500,
      headers: {},
    });
  });
});

describe("verdicts", () => {
  it.each([
    {
      name: "a returned 429 Response is reported and retried",
      value: new Response("{}", { status: 429 }),
      retry: true,
      report: { statusCode: 429 },
    },
    {
      name: "a returned 400 Response is reported, not retried",
      value: new Response("{}", { status: 400 }),
      retry: false,
      report: { statusCode: 400 },
    },
    {
      name: "a returned 200 Response is reported as its status",
      value: new Response("{}", { status: 200 }),
      retry: false,
      report: { statusCode: 200 },
    },
    {
      name: "a parsed answer is a success, with its tokens",
      value: { usage: { total_tokens: 3 } },
      retry: false,
      report: { outcome: "success" },
      tokens: 3,
    },
    { name: "undefined is a success", value: undefined, retry: false, report: { outcome: "success" } },
  ])("$name", async ({ value, retry, report, tokens }) => {
    const verdict = await verdictOfValue(value, isRetryableStatus);
    expect(verdict).toMatchObject({ retry, report });
    expect(verdict.tokens).toBe(tokens);
  });

  it.each([
    {
      name: "an OpenAI 429 is reported with its rate-limit headers and retried",
      err: openaiRateLimit(),
      retry: true,
      report: { statusCode: 429, headers: { "retry-after": "20", "x-ratelimit-remaining-requests": "0" } },
    },
    {
      name: "an Anthropic 529 is retried",
      err: anthropicOverloaded(),
      retry: true,
      report: { statusCode: 529 },
    },
    {
      name: "an OpenAI 400 is reported, not retried",
      err: OpenAI.APIError.generate(400, { error: { message: "bad" } }, undefined, new Headers()),
      retry: false,
      report: { statusCode: 400 },
    },
    {
      name: "a network error is networkError and retried",
      err: fetchFailed("ECONNRESET"),
      retry: true,
      report: { outcome: "networkError" },
    },
    {
      name: "anything else is requestError, not retried",
      err: new Error("bug"),
      retry: false,
      report: { outcome: "requestError" },
    },
  ])("$name", ({ err, retry, report }) => {
    expect(verdictOfError(err, isRetryableStatus)).toMatchObject({ retry, report });
  });

  it("takes another retry rule", () => {
    expect(verdictOfError(openaiRateLimit(), () => false).retry).toBe(false);
  });
});
