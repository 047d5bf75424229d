/**
 * A stand-in for the API server's TokenReview and SubjectAccessReview endpoints, on loopback,
 * scriptable: which tokens authenticate as whom, which grants exist, and how it fails (a 500,
 * a hang, a reset connection, a 403 to the operator itself). Counts the reviews it receives.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

/** How the fake answers: normally, or one way of failing. */
export type ReviewMode = "answer" | "error500" | "hang" | "reset" | "forbiddenToOperator";

export interface FakeReviewApi {
  url: string;
  kc: KubeConfig;
  mode: ReviewMode;
  /** token → username; a token not here is not authenticated. */
  tokens: Map<string, string>;
  /** `${username} ${verb} ${namespace}/${pool}` for each grant. */
  grants: Set<string>;
  /** Reviews received, answered or not. */
  received: { tokenReviews: number; accessReviews: number };
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  return JSON.parse(text) as Record<string, unknown>;
}

/** A kubeconfig for a fake API server on `url`: the operator's own token, TLS not checked. */
export function fakeApiKubeConfig(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: url, skipTLSVerify: true }],
    users: [{ name: "u", token: "operator" }],
    contexts: [{ name: "ctx", cluster: "c", user: "u" }],
    currentContext: "ctx",
  });
  return kc;
}

export async function startFakeReviewApi(): Promise<FakeReviewApi> {
  const api: Omit<FakeReviewApi, "url" | "kc" | "close"> = {
    mode: "answer",
    tokens: new Map(),
    grants: new Set(),
    received: { tokenReviews: 0, accessReviews: 0 },
  };
  const server: Server = createServer((req, res) => {
    const isTokenReview = req.url?.endsWith("/tokenreviews") ?? false;
    if (isTokenReview) api.received.tokenReviews++;
    else api.received.accessReviews++;
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    switch (api.mode) {
      case "hang":
        return;
      case "reset":
        req.socket.destroy();
        return;
      case "error500":
        json(500, { kind: "Status", status: "Failure", message: "etcdserver: request timed out", code: 500 });
        return;
      case "forbiddenToOperator":
        json(403, { kind: "Status", status: "Failure", message: "forbidden: cannot create", code: 403 });
        return;
      case "answer":
        break;
    }
    void body(req).then((review) => {
      const spec = review.spec as Record<string, unknown>;
      if (isTokenReview) {
        const username = api.tokens.get(String(spec.token));
        json(201, {
          ...review,
          status: username
            ? {
                authenticated: true,
                user: { username, uid: `uid-${username}`, groups: ["system:authenticated"] },
                audiences: spec.audiences,
              }
            : { authenticated: false, error: "invalid bearer token" },
        });
      } else {
        const attrs = spec.resourceAttributes as Record<string, string>;
        const grant = `${String(spec.user)} ${attrs.verb} ${attrs.namespace}/${attrs.name}`;
        json(201, { ...review, status: { allowed: api.grants.has(grant) } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = fakeApiKubeConfig(url);
  return Object.assign(api, {
    url,
    kc,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
}
