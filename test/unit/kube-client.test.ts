/**
 * src/kube-client.ts leans on private behaviour of @kubernetes/client-node: these tests pin the
 * version it was checked against and check each point it relies on, without a connection (an
 * undici Agent connects only when a request goes out). The connections themselves, and a client
 * certificate rotated on disk, are checked against the real API server in
 * test/integration/kube-client.test.ts.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { HttpMethod, KubeConfig, RequestContext } from "@kubernetes/client-node";
import type { Agent, Dispatcher } from "undici";
import { describe, expect, it } from "vitest";
import { CHECKED_CLIENT_NODE_VERSION, requestAuth, sharedTransport } from "../../src/kube-client.ts";

const SERVER = "https://127.0.0.1:6443";
const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A KubeConfig with two users holding client certificates (in memory: nothing is read from disk). */
function kubeConfig(cert = "cert-1"): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: SERVER, caData: b64("ca") }],
    users: [
      { name: "first", certData: b64(cert), keyData: b64("key-1") },
      { name: "second", certData: b64("cert-2"), keyData: b64("key-2") },
    ],
    contexts: [
      { name: "first", cluster: "c", user: "first" },
      { name: "second", cluster: "c", user: "second" },
    ],
    currentContext: "first",
  });
  return kc;
}

/** The dispatcher `config` sets on a request, as makeApiClient's clients and Watch ask for it. */
async function dispatcherOf(config: KubeConfig): Promise<Dispatcher | undefined> {
  const ctx = new RequestContext(`${SERVER}/api`, HttpMethod.GET);
  await config.applySecurityAuthentication(ctx);
  return ctx.getDispatcher();
}

describe("the @kubernetes/client-node internals src/kube-client.ts relies on", () => {
  it("is the version the patch was checked against", () => {
    const path = createRequire(import.meta.url).resolve("@kubernetes/client-node/package.json");
    const { version } = JSON.parse(readFileSync(path, "utf8")) as { version: string };
    expect(
      version,
      `@kubernetes/client-node ${version} is installed, but src/kube-client.ts overrides its private ` +
        `KubeConfig.createDispatcher as ${CHECKED_CLIENT_NODE_VERSION} has it. Read that version's ` +
        `dist/config.js (applySecurityAuthentication, createDispatcher) against the new one, run ` +
        `test/integration/kube-client.test.ts, then update CHECKED_CLIENT_NODE_VERSION and package.json.`,
    ).toBe(CHECKED_CLIENT_NODE_VERSION);
  });

  it("client-node alone builds a new Agent for every request (why the patch exists)", async () => {
    const kc = kubeConfig();
    const [a, b] = [await dispatcherOf(kc), await dispatcherOf(kc)];
    expect(a).toBeDefined();
    expect(a).not.toBe(b);
  });

  it("reads the certificate afresh for every request and hands it to this.createDispatcher", async () => {
    const kc = kubeConfig();
    const seen: string[] = [];
    // client-node's private method, as src/kube-client.ts overrides it.
    type Internals = { createDispatcher: (cluster: unknown, options: { cert?: Buffer }) => undefined };
    const spy = Object.create(kc) as KubeConfig;
    (spy as unknown as Internals).createDispatcher = (_cluster, options) => {
      seen.push(String(options.cert));
      return undefined;
    };
    await kc.applySecurityAuthentication.call(spy, new RequestContext(SERVER, HttpMethod.GET));
    kc.loadFromOptions({ ...kubeConfigOptions(kc), users: [{ name: "first", certData: b64("rotated") }] });
    await kc.applySecurityAuthentication.call(spy, new RequestContext(SERVER, HttpMethod.GET));
    expect(seen).toEqual(["cert-1", "rotated"]);
  });
});

/** kc's clusters, users, contexts and current context, for loadFromOptions. */
function kubeConfigOptions(kc: KubeConfig) {
  return {
    clusters: kc.getClusters(),
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  };
}

describe("sharedTransport", () => {
  it("gives every request of a KubeConfig one Agent per cluster and user (API clients: see the integration test)", async () => {
    const kc = kubeConfig();
    const view = sharedTransport(kc);
    const first = await dispatcherOf(view);
    expect(first).toBeDefined();
    expect(await dispatcherOf(view)).toBe(first);
    expect(sharedTransport(view)).toBe(view);
    expect(sharedTransport(kc)).toBe(view);
    expect((await requestAuth(kc, new URL(`${SERVER}/api/v1/secrets`))).dispatcher).toBe(first);

    kc.setCurrentContext("second");
    const second = await dispatcherOf(view);
    expect(second).not.toBe(first);
    kc.setCurrentContext("first");
    expect(await dispatcherOf(view)).toBe(first);
  });

  it("builds a new Agent when the client certificate changes, and closes the old one", async () => {
    const kc = kubeConfig("cert-1");
    const view = sharedTransport(kc);
    const before = (await dispatcherOf(view)) as Agent;
    // What a rotated certificate file amounts to: other bytes on the next read.
    kc.loadFromOptions({
      ...kubeConfigOptions(kc),
      users: [{ name: "first", certData: b64("cert-1-rotated"), keyData: b64("key-1-rotated") }],
    });
    const after = (await dispatcherOf(view)) as Agent;
    expect(after).not.toBe(before);
    expect(before.closed).toBe(true);
    expect(after.closed).toBe(false);
    expect(await dispatcherOf(view)).toBe(after);
  });
});
