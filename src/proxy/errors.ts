/**
 * The proxy's own errors in the provider's error shape, so an SDK pointed at the proxy reads them
 * as it reads the provider's: OpenAI `{error: {message, type, code}}`, Anthropic
 * `{type: "error", error: {type, message}}`, Gemini `{error: {code, message, status}}`. Each also
 * carries keypool's stable code (`error.code` or `error.keypool_code`) and the x-keypool-error
 * header, so scripts can match on it whatever the provider.
 */
import type { ProviderName } from "../providers/types.ts";
import type { KeyPoolError } from "../server/errors.ts";

const ANTHROPIC_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  502: "api_error",
  503: "overloaded_error",
  504: "api_error",
};

const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  413: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

const OPENAI_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "invalid_request_error",
  403: "invalid_request_error",
  404: "invalid_request_error",
  413: "invalid_request_error",
  429: "requests",
};

/** The body of `error` as `provider`'s API would write it (OpenAI's shape when unknown). */
export function providerErrorBody(provider: ProviderName | undefined, error: KeyPoolError): unknown {
  const status = error.status;
  if (provider === "anthropic") {
    return {
      type: "error",
      error: {
        type: ANTHROPIC_TYPES[status] ?? "api_error",
        message: error.message,
        keypool_code: error.code,
      },
    };
  }
  if (provider === "google") {
    return {
      error: {
        code: status,
        message: error.message,
        status: GOOGLE_STATUS[status] ?? "INTERNAL",
        details: [
          { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: error.code, domain: "keypool.dev" },
        ],
      },
    };
  }
  return {
    error: {
      message: error.message,
      type: OPENAI_TYPES[status] ?? "server_error",
      param: null,
      code: error.code,
    },
  };
}
