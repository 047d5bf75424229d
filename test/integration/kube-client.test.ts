/**
 * The operator's connections to the API server, counted by a TCP relay in front of the shared
 * control plane: one pool per KubeConfig, whatever the client, instead of a TLS connection (and
 * a handshake on the event loop) per request. And a client certificate rotated on disk is the
 * one the next connection presents.
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LeaderElector } from "../../src/controller/leader-election.ts";
import { apiClient, requestAuth } from "../../src/kube-client.ts";
import { createLogger } from "../../src/log.ts";
import { issueClientCert, type Pem } from "../support/control-plane/certs.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";

const admin = adminKubeConfig();
const logger = createLogger({ level: "silent" });

/** A relay to the API server that counts the connections made through it. */
class CountingRelay {
  connections = 0;
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(target: URL): Promise<CountingRelay> {
    const server = createServer();
    const relay = new CountingRelay(server);
    server.on("connection", (client) => {
      relay.connections++;
      const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
      for (const s of [client, upstream]) {
        relay.#sockets.add(s);
        s.on("error", () => undefined).on("close", () => relay.#sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return relay;
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  /** The admin KubeConfig, pointed at this relay (the server certificate is for 127.0.0.1). */
  kubeConfig(): KubeConfig {
    const cluster = admin.getCurrentCluster();
    const user = admin.getCurrentUser();
    if (!cluster || !user) throw new Error("admin kubeconfig has no cluster or user");
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ ...cluster, server: `https://127.0.0.1:${this.port}` }],
      users: [user],
      contexts: [{ name: "relay", cluster: cluster.name, user: user.name }],
      currentContext: "relay",
    });
    return kc;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let relay: CountingRelay;
let namespace: string;
beforeAll(async () => {
  const server = admin.getCurrentCluster()?.server;
  if (!server) throw new Error("admin kubeconfig has no server");
  if (!/^127\.0\.0\.1$|^localhost$/.test(new URL(server).hostname)) throw new Error(`unexpected ${server}`);
  relay = await CountingRelay.start(new URL(server));
  namespace = await createTestNamespace(admin, "kube-client");
});
afterAll(async () => {
  await relay.stop();
});

describe("connections to the API server", () => {
  it("client-node alone opens a TLS connection per request (why src/kube-client exists)", async () => {
    const kc = relay.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const before = relay.connections;
    for (let i = 0; i < 5; i++) await core.readNamespace({ name: namespace });
    expect(relay.connections - before).toBe(5);
  });

  it("API clients of every kind share one connection for requests one after another", async () => {
    const kc = relay.kubeConfig();
    const before = relay.connections;
    const core = apiClient(kc, CoreV1Api);
    const custom = apiClient(kc, CustomObjectsApi);
    const leases = apiClient(kc, CoordinationV1Api);
    for (let i = 0; i < 5; i++) {
      await core.readNamespace({ name: namespace });
      await custom.listNamespacedCustomObject({
        group: "coordination.k8s.io",
        version: "v1",
        namespace,
        plural: "leases",
      });
      await leases.listNamespacedLease({ namespace });
    }
    // A client made later, from the same KubeConfig, joins the same pool.
    await apiClient(kc, CoreV1Api).readNamespace({ name: namespace });
    expect(relay.connections - before).toBe(1);
  });

  it("a leader renewing its Lease keeps one connection", async () => {
    const kc = relay.kubeConfig();
    const before = relay.connections;
    let renewals = 0;
    const elector = new LeaderElector({
      kc,
      namespace,
      name: "keypool-operator",
      identity: "relay-test",
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 100,
      logger,
      clock: { now: () => Date.now() },
      onStartedLeading: () => renewals++,
    });
    elector.start();
    const leases = apiClient(admin, CoordinationV1Api);
    const renewTimes = new Set<string>();
    // Ten renewals seen on the Lease (every 100 ms).
    await eventually(async () => {
      const lease = await leases.readNamespacedLease({ name: "keypool-operator", namespace });
      if (lease.spec?.renewTime) renewTimes.add(String(lease.spec.renewTime));
      return renewTimes.size >= 10 ? true : undefined;
    }, 20_000);
    await elector.stop();
    expect(renewals).toBe(1);
    expect(relay.connections - before).toBe(1);
  });
});

describe("a client certificate rotated on disk", () => {
  /** A kubeconfig user whose certificate and key are files, as a rotated credential would be. */
  async function rotatingUser() {
    const dir = await mkdtemp(join(tmpdir(), "kube-client-rotate-"));
    const certFile = join(dir, "client.crt");
    const keyFile = join(dir, "client.key");
    // Written beside and renamed over, as the kubelet and cert-manager's csi-driver swap files.
    const install = async ({ cert, key }: Pem) => {
      await writeFile(`${keyFile}.new`, key, { mode: 0o600 });
      await writeFile(`${certFile}.new`, cert);
      await rename(`${keyFile}.new`, keyFile);
      await rename(`${certFile}.new`, certFile);
    };
    const cluster = admin.getCurrentCluster();
    if (!cluster) throw new Error("admin kubeconfig has no cluster");
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "rotating", certFile, keyFile }],
      contexts: [{ name: "rotating", cluster: cluster.name, user: "rotating" }],
      currentContext: "rotating",
    });
    return { kc, install, remove: () => rm(dir, { recursive: true, force: true }) };
  }

  /** Who the API server says the client is (SelfSubjectReview, open to every authenticated user). */
  async function whoAmI(kc: KubeConfig): Promise<string | undefined> {
    const review = await apiClient(kc, AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    return review.status?.userInfo?.username;
  }

  it("is the one the next new connection presents: the API server sees the new identity", async () => {
    const ca = inject("clientCa");
    const { kc, install, remove } = await rotatingUser();
    try {
      await install(await issueClientCert(ca, "CN=keypool-rotating-first"));
      expect(await whoAmI(kc)).toBe("keypool-rotating-first");
      expect(await whoAmI(kc)).toBe("keypool-rotating-first");
      const url = new URL(`${kc.getCurrentCluster()?.server}/version`);
      const before = (await requestAuth(kc, url)).dispatcher;

      await install(await issueClientCert(ca, "CN=keypool-rotating-second"));
      // The very next request: no restart, no new KubeConfig, no waiting for the old connection.
      expect(await whoAmI(kc)).toBe("keypool-rotating-second");
      const after = (await requestAuth(kc, url)).dispatcher;
      expect(after).not.toBe(before);
      // Requests after that share the new connection pool again.
      expect((await requestAuth(kc, url)).dispatcher).toBe(after);
    } finally {
      await remove();
    }
  });
});
