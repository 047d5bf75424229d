/**
 * The operator's connections to the API server: one undici connection pool per KubeConfig,
 * cluster/user and TLS credentials, shared by every API client, watch and LIST of the process.
 *
 * client-node 2.0.1 builds a new undici Agent on every applySecurityAuthentication (it caches
 * only the https.Agent used for WebSockets), so each request of a `makeApiClient` client (a lease
 * renewal, a status patch, an Event, a TokenReview) opened a TLS connection of its own and left
 * the agent behind: a handshake and a parse of the CA, certificate and key on the event loop for
 * every call. Measured under bench/proxy: TLS set-up ran on the operator's request thread a few
 * times a second while it served proxied calls. Here one Agent per cluster/user is kept and
 * reused while the TLS material it was built with stays the same; credentials (headers, tokens
 * read from files) are still taken fresh for every request. docs/adr/0003-kube-client-transport.md
 * has the alternatives.
 *
 * What this relies on inside client-node (private API, checked against CHECKED_CLIENT_NODE_VERSION;
 * test/unit/kube-client.test.ts fails when another version is installed, and checks each point):
 * - `applySecurityAuthentication(ctx)` reads the CA, client certificate and key afresh on every
 *   call (files included; an exec plugin's certificate too) and hands them to
 *   `this.createDispatcher(cluster, agentOptions)`, whose answer it sets with
 *   `ctx.setDispatcher()`. The view below overrides `createDispatcher`, so client-node builds no
 *   Agent at all when the shared one still fits.
 * - `makeApiClient()` uses `this` as the auth method, and `Watch` calls
 *   `config.applySecurityAuthentication(ctx)` then `fetch(..., {dispatcher: ctx.getDispatcher()})`.
 *
 * A rotated client certificate (a kubeconfig's client-certificate file replaced on disk, an exec
 * credential with a new certificate, a new CA bundle) is different material: the next request
 * gets a new Agent, so its new connection presents the new certificate, and the old Agent is
 * closed once the requests on it (an open watch) have finished.
 */
import {
  type ApiConstructor,
  type ApiType,
  type Cluster,
  HttpMethod,
  type KubeConfig,
  RequestContext,
} from "@kubernetes/client-node";
import type { AgentOptions } from "node:https";
import type { Dispatcher } from "undici";

/** The @kubernetes/client-node version whose internals (above) this file was checked against. */
export const CHECKED_CLIENT_NODE_VERSION = "2.0.1";

/** The private method of client-node's KubeConfig this file overrides. */
interface ClientNodeInternals {
  createDispatcher(cluster: Cluster | null, agentOptions: AgentOptions): Dispatcher | undefined;
}

interface SharedAgent {
  /** What the Agent was built with: a different value means a new Agent. */
  material: unknown[];
  dispatcher: Dispatcher;
}

const agents = new WeakMap<KubeConfig, Map<string, SharedAgent>>();
const views = new WeakMap<KubeConfig, KubeConfig>();

/** Everything client-node builds an Agent from (createDispatcherOptions reads no more). */
function materialOf(cluster: Cluster | null, o: AgentOptions): unknown[] {
  return [
    cluster?.server,
    cluster?.proxyUrl,
    cluster?.skipTLSVerify,
    o.ca,
    o.cert,
    o.key,
    o.pfx,
    o.passphrase,
    o.rejectUnauthorized,
    o.servername,
  ];
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  return a === b;
}

/** The shared Agent for kc's current cluster/user if it was built from this material, else a new one. */
function sharedDispatcher(
  kc: KubeConfig,
  cluster: Cluster | null,
  agentOptions: AgentOptions,
  create: ClientNodeInternals["createDispatcher"],
): Dispatcher | undefined {
  const key = JSON.stringify([cluster?.name, kc.getCurrentUser()?.name]);
  let byKey = agents.get(kc);
  if (!byKey) agents.set(kc, (byKey = new Map()));
  const material = materialOf(cluster, agentOptions);
  const known = byKey.get(key);
  if (known && same(known.material, material)) return known.dispatcher;
  const dispatcher = create(cluster, agentOptions);
  if (dispatcher) byKey.set(key, { material, dispatcher });
  else byKey.delete(key);
  // Graceful: requests already on it (an open watch) finish; no new ones go there.
  if (known) void known.dispatcher.close().catch(() => undefined);
  return dispatcher;
}

/**
 * `kc` as API clients and `Watch` should see it: the same clusters and credentials, and the
 * shared connection pool. The same view for the same `kc`; a view of a view shares the pool too.
 */
export function sharedTransport(kc: KubeConfig): KubeConfig {
  const known = views.get(kc);
  if (known) return known;
  const create = (kc as unknown as Partial<ClientNodeInternals>).createDispatcher;
  if (typeof create !== "function") {
    throw new Error(
      `@kubernetes/client-node's KubeConfig has no createDispatcher (src/kube-client.ts was checked against ${CHECKED_CLIENT_NODE_VERSION})`,
    );
  }
  const view = Object.create(kc) as KubeConfig;
  (view as unknown as ClientNodeInternals).createDispatcher = (cluster, agentOptions) =>
    sharedDispatcher(kc, cluster, agentOptions, (c, o) => create.call(kc, c, o));
  // client-node's own method, run with `this` = the view so that it calls the override above.
  view.applySecurityAuthentication = (ctx: RequestContext) => kc.applySecurityAuthentication.call(view, ctx);
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
