import { describe, expect, it } from "vitest";
import { classifyNetworkError } from "../../../src/providers/index.ts";

function systemError(code: string, message = `connect ${code} 10.0.0.1:443`): Error {
  return Object.assign(new Error(message), { code });
}

function fetchFailed(cause: unknown): TypeError {
  return new TypeError("fetch failed", { cause });
}

describe("classifying a call that got no HTTP answer", () => {
  it.each<[string, unknown, string]>([
    [
      "fetch's AbortSignal.timeout()",
      new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      "timeout",
    ],
    ["an aborted request", new DOMException("This operation was aborted", "AbortError"), "aborted"],
    ["a socket timeout", systemError("ETIMEDOUT"), "timeout"],
    [
      "undici's connect timeout inside fetch",
      fetchFailed(systemError("UND_ERR_CONNECT_TIMEOUT")),
      "connect_timeout",
    ],
    ["undici's headers timeout inside fetch", fetchFailed(systemError("UND_ERR_HEADERS_TIMEOUT")), "timeout"],
    [
      "undici's body timeout",
      Object.assign(new Error("Body Timeout Error"), { name: "BodyTimeoutError" }),
      "timeout",
    ],
    [
      "a reset connection inside fetch",
      fetchFailed(systemError("ECONNRESET", "read ECONNRESET")),
      "connection_reset",
    ],
    ["a broken pipe", systemError("EPIPE"), "connection_reset"],
    [
      "undici's 'other side closed'",
      fetchFailed(systemError("UND_ERR_SOCKET", "other side closed")),
      "connection_reset",
    ],
    ["a refused connection inside fetch", fetchFailed(systemError("ECONNREFUSED")), "connection_refused"],
    [
      "refused on every address (happy eyeballs)",
      fetchFailed(new AggregateError([systemError("ECONNREFUSED"), systemError("ECONNREFUSED")], "")),
      "connection_refused",
    ],
    [
      "an unknown host",
      fetchFailed(systemError("ENOTFOUND", "getaddrinfo ENOTFOUND api.example")),
      "dns_lookup_failed",
    ],
    ["a DNS server hiccup", systemError("EAI_AGAIN"), "dns_lookup_failed"],
    ["an unreachable host", systemError("EHOSTUNREACH"), "host_unreachable"],
    ["an unreachable network", systemError("ENETUNREACH"), "network_unreachable"],
    ["an expired certificate", fetchFailed(systemError("CERT_HAS_EXPIRED")), "tls_error"],
    ["a self-signed certificate", fetchFailed(systemError("DEPTH_ZERO_SELF_SIGNED_CERT")), "tls_error"],
    ["a TLS protocol error", systemError("ERR_SSL_WRONG_VERSION_NUMBER"), "tls_error"],
    ["an error without a known code", new Error("something odd"), "network_error"],
    ["a thrown string", "boom", "network_error"],
    ["nothing", undefined, "network_error"],
  ])("%s is a retryable networkError", (_name, err, reason) => {
    expect(classifyNetworkError(err)).toEqual({ kind: "networkError", retryable: true, reason });
  });

  it("never repeats the error's message, which may hold a URL or a header", () => {
    const secret = "sk-proj-SECRET1234567890";
    const err = fetchFailed(
      systemError("ECONNRESET", `request to https://api.example/v1?key=${secret} failed`),
    );
    expect(JSON.stringify(classifyNetworkError(err))).not.toContain(secret);
  });

  it("stops following a cause chain that loops", () => {
    const err: Error & { cause?: unknown } = new Error("loop");
    err.cause = err;
    expect(classifyNetworkError(err).reason).toBe("network_error");
  });
});
