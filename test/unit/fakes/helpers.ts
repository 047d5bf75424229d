/** Client side of the fake-provider tests: one generation call per provider, and stream readers. */
import { getProvider } from "../../../src/providers/index.ts";
import type { FakeProvider, FakeProviderName } from "../../fakes/index.ts";

export const PROVIDERS: readonly FakeProviderName[] = ["openai", "anthropic", "google"];

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

/** The provider's text-generation call: path and body, plain or streamed. */
export function generation(name: FakeProviderName, stream: boolean): { path: string; body: unknown } {
  switch (name) {
    case "openai":
      return {
        path: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          messages: [{ role: "user", content: "Say hello" }],
          ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
        },
      };
    case "anthropic":
      return {
        path: "/v1/messages",
        body: {
          model: "claude-sonnet-4-5-20250929",
          max_tokens: 256,
          messages: [{ role: "user", content: "Say hello" }],
          ...(stream ? { stream: true } : {}),
        },
      };
    case "google":
      return {
        path: `/v1beta/models/gemini-2.5-flash:${stream ? "streamGenerateContent?alt=sse" : "generateContent"}`,
        body: { contents: [{ role: "user", parts: [{ text: "Say hello" }] }] },
      };
  }
}

/** Sends `fake`'s generation call with `key` in the provider's own auth headers. */
export async function generate(
  fake: FakeProvider,
  key: string,
  options: { stream?: boolean; signal?: AbortSignal } = {},
): Promise<Response> {
  const { path, body } = generation(fake.name, options.stream ?? false);
  return fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: { ...getProvider(fake.name).authHeaders(key), "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export async function reply(response: Promise<Response>): Promise<Reply> {
  const res = await response;
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Sends the profile's probe (list models) with `key`. */
export function probe(fake: FakeProvider, key: string): Promise<Reply> {
  const profile = getProvider(fake.name);
  return reply(
    fetch(`${fake.url}${profile.probe.path}`, {
      method: profile.probe.method,
      headers: { ...profile.probe.headers, ...profile.authHeaders(key) },
    }),
  );
}

/** Classifies an answer with the real provider profile, now. */
export function classify(name: FakeProviderName, answer: Reply) {
  return getProvider(name).classify(
    { status: answer.status, headers: answer.headers, body: answer.text },
    Date.now(),
  );
}

/** Reads a streamed body to the end: its text and how many separate reads delivered it. */
export async function readStream(res: Response): Promise<{ text: string; reads: number }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  let reads = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, { stream: true });
  }
  return { text, reads };
}

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/** Splits an SSE body into events (blank-line separated, LF or CRLF), as the SDKs' decoders do. */
export function parseSse(text: string): SseEvent[] {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== "")
    .map((block) => {
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      return { event, data: data.join("\n") };
    });
}
