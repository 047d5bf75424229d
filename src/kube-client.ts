/**
 * The operator's connections to the API server: one undici connection pool per KubeConfig and
 * cluster/user, shared by every API client, watch and LIST of the process.
 *
 * client-node 2.0.1 builds a new undici Agent on every applySecurityAuthentication (it caches
 * only the https.Agent used for WebSockets), so each request of a `makeApiClient` client (a lease
 * renewal, a status patch, an Event, a TokenReview) opened a TLS connection of its own and left
 * the agent behind: a handshake and a parse of the CA, certificate and key on the event loop for
 * every call. Measured under bench/proxy: TLS set-up ran on the operator's request thread a few
 * times a second while it served proxied calls. Here the first Agent per cluster/user is kept and
 * reused; credentials (headers, tokens read from files) are still taken fresh for every request.
 */
import {
  type ApiConstructor,
  type ApiType,
  HttpMethod,
  type KubeConfig,
  RequestContext,
} from "@kubernetes/client-node";
import type { Dispatcher } from "undici";

const dispatchers = new WeakMap<KubeConfig, Map<string, Dispatcher>>();
const views = new WeakMap<KubeConfig, KubeConfig>();

function shareDispatcher(kc: KubeConfig, fresh: Dispatcher | undefined): Dispatcher | undefined {
  if (!fresh) return undefined;
  const key = JSON.stringify([kc.getCurrentCluster()?.name, kc.getCurrentUser()?.name]);
  let byKey = dispatchers.get(kc);
  if (!byKey) dispatchers.set(kc, (byKey = new Map()));
  const cached = byKey.get(key);
  if (cached) {
    // Never used: closing it releases nothing but makes the intent plain.
    void fresh.close().catch(() => undefined);
    return cached;
  }
  byKey.set(key, fresh);
  return fresh;
}

/**
 * `kc` as API clients and `Watch` should see it: the same clusters and credentials, and the
 * shared connection pool. The same view for the same `kc`; a view of a view shares the pool too.
 */
export function sharedTransport(kc: KubeConfig): KubeConfig {
  const known = views.get(kc);
  if (known) return known;
  const view = Object.create(kc) as KubeConfig;
  view.applySecurityAuthentication = async (ctx: RequestContext) => {
    await kc.applySecurityAuthentication(ctx);
    const dispatcher = shareDispatcher(kc, ctx.getDispatcher());
    if (dispatcher) ctx.setDispatcher(dispatcher);
  };
  views.set(kc, view);
  views.set(view, view);
  return view;
}

/** `kc.makeApiClient(api)`, its requests on the shared connection pool. */
export function apiClient<T extends ApiType>(kc: KubeConfig, api: ApiConstructor<T>): T {
  return sharedTransport(kc).makeApiClient(api);
}

/** Headers and the shared dispatcher for a request of our own (the watcher's LISTs) to `url`. */
export async function requestAuth(
  kc: KubeConfig,
  url: URL,
): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  await sharedTransport(kc).applySecurityAuthentication(ctx);
  return { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() };
}
