/**
 * The first hour of a user, on a real cluster: the README's own commands (`kubectl apply -k
 * deploy/`, the examples), then what a platform team relies on afterwards (403 without a grant,
 * a rollout restart without a failed call, a leader that goes away, deploy/ha/ on Redis).
 *
 * One list of checks for every cluster: `npm run test:e2e` runs it on the single-node cluster
 * this machine builds (test/support/cluster), test/e2e/kind.sh on kind; the cluster comes from
 * test/e2e/support/target.ts. The checks run in order: each builds on the ones before.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Kubectl, kubectlFor, until } from "./support/kubectl.ts";
import { callerPod, redis } from "./support/manifests.ts";
import { type E2ETarget, e2eTarget } from "./support/target.ts";

const SYSTEM = "keypool-system";
const AI = "ai";
const FAKE_NS = "e2e";
const SERVICE_URL = `http://keypool-operator.${SYSTEM}.svc:8769`;
/** The keys examples/openai.yaml holds: the fake provider answers them as valid. */
const EXAMPLE_KEYS = [
  "sk-example-not-a-real-key-main-0001",
  "sk-example-not-a-real-key-main-0002",
  "sk-example-not-a-real-key-main-0003",
  "sk-example-not-a-real-key-batch-0001",
  "sk-example-not-a-real-key-batch-0002",
];
const LIMITED_KEY = "sk-e2e-fake-openai-key-0001";

let target: E2ETarget;
let kubectl: Kubectl;
let connected = false;
const log = (line: string) => console.log(`[e2e] ${line}`);

interface PodList {
  items: Array<{
    metadata: { name: string; deletionTimestamp?: string };
    status?: { podIP?: string; conditions?: Array<{ type: string; status: string }> };
  }>;
}

const ready = (pod: PodList["items"][number]) =>
  !pod.metadata.deletionTimestamp &&
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

async function operatorPods(): Promise<PodList["items"]> {
  const list = await kubectl.getJson<PodList>([
    "pods",
    "-n",
    SYSTEM,
    "-l",
    "app.kubernetes.io/name=keypool-operator",
  ]);
  return list?.items ?? [];
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = await kubectl.getJson<{ spec?: { holderIdentity?: string } }>([
    "lease",
    "keypool-operator",
    "-n",
    SYSTEM,
  ]);
  return lease?.spec?.holderIdentity || undefined;
}

/** The operator pod a Lease holder identity names (`<pod name>-<8 hex>`, or the pod name). */
function podOf(holder: string, pods: PodList["items"]): string | undefined {
  const name = holder.replace(/-[0-9a-f]{8}$/, "");
  return pods.find((p) => p.metadata.name === holder || p.metadata.name === name)?.metadata.name;
}

/** Runs a caller pod to completion (or until `doneWhen` holds on its log) and returns its log. */
async function runCaller(
  name: string,
  script: string,
  options: { serviceAccount?: string; doneWhen?: (log: string) => boolean; timeoutMs?: number } = {},
): Promise<string> {
  await kubectl(["delete", "pod", name, "-n", AI, "--ignore-not-found", "--wait=true"]);
  await kubectl(["apply", "-f", "-"], {
    input: callerPod({
      name,
      namespace: AI,
      serviceAccount: options.serviceAccount ?? "example-client",
      image: target.images.curl,
      script,
    }),
  });
  const logs = await until(
    `pod ${AI}/${name} finished`,
    async () => {
      const phase = (await kubectl.getJson<{ status?: { phase?: string } }>(["pod", name, "-n", AI]))?.status
        ?.phase;
      if (phase !== "Succeeded" && phase !== "Failed" && !options.doneWhen) return undefined;
      const text = await kubectl(["logs", name, "-n", AI]).catch(() => "");
      if (phase === "Succeeded" || phase === "Failed") return { text, phase };
      return options.doneWhen?.(text) ? { text, phase } : undefined;
    },
    options.timeoutMs ?? 180_000,
    1_000,
  );
  return logs.text;
}

/**
 * `kubectl apply -k <kustomization>`, the image this target built where it is not the one
 * deploy/ names, and the rollout to its end.
 */
async function applyOperator(kustomization: string): Promise<void> {
  await kubectl(["apply", "-k", kustomization]);
  await kubectl(["wait", "--for=condition=Established", "crd/keypools.keypool.dev", "--timeout=60s"]);
  if (target.images.operator !== target.images.operatorDefault) {
    const image = `operator=${target.images.operator}`;
    await kubectl(["-n", SYSTEM, "set", "image", "deployment/keypool-operator", image]);
  }
  const rollout = ["-n", SYSTEM, "rollout", "status", "deployment/keypool-operator", "--timeout=300s"];
  await kubectl(rollout, { timeoutMs: 320_000 });
}

const bearer = `-H "Authorization: Bearer $(cat "$TOKEN_FILE")"`;

beforeAll(async () => {
  target = await e2eTarget(log);
  kubectl = kubectlFor(target.kubeconfig, target.kubectl);
  connected = true;
  log(`cluster: ${target.description}`);
}, 3_600_000);

/** What a person needs to see when a check fails: pods, events, KeyPools and the logs. */
async function printDiagnostics(): Promise<void> {
  const show = async (title: string, args: string[]) => {
    const result = await kubectl.attempt(args);
    console.log(`\n==> ${title}\n${result.stdout}${result.stderr}`);
  };
  await show("pods", ["get", "pods", "-A", "-o", "wide"]);
  await show("KeyPools", ["get", "keypools", "-A", "-o", "yaml"]);
  for (const ns of [SYSTEM, AI, FAKE_NS])
    await show(`events in ${ns}`, ["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]);
  for (const pod of await operatorPods())
    await show(`logs of ${pod.metadata.name}`, ["logs", "-n", SYSTEM, pod.metadata.name, "--tail=200"]);
  await show("fake provider", ["logs", "-n", FAKE_NS, "deployment/fake-provider", "--tail=50"]);
  await show("client", ["logs", "-n", AI, "deployment/example-client", "--tail=50"]);
}

let failed = false;
afterEach(({ task }) => {
  if (task.result?.state === "fail") failed = true;
});

afterAll(async () => {
  if (failed && connected)
    await printDiagnostics().catch((err: unknown) => console.log(`diagnostics: ${String(err)}`));
  await target?.close();
}, 600_000);

describe("a user's first hour, on a real cluster", () => {
  it("kubectl apply -k deploy/: two Ready operator pods under the restricted Pod Security Standard, one holding the Lease", async () => {
    await applyOperator("deploy/");
    const namespace = await kubectl.getJson<{ metadata: { labels?: Record<string, string> } }>([
      "namespace",
      SYSTEM,
    ]);
    expect(namespace?.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const pods = await until("two Ready operator pods", async () => {
      const list = (await operatorPods()).filter(ready);
      return list.length === 2 ? list : undefined;
    });
    const holder = await until("a Lease holder", leaseHolder);
    expect(podOf(holder, pods)).toBeDefined();
    log(`operator pods ${pods.map((p) => p.metadata.name).join(", ")}; Lease held by ${holder}`);
  });

  it("the image runs as 65532 on a read-only root filesystem, and has no shell", async () => {
    const [pod] = (await operatorPods()).filter(ready);
    if (!pod) throw new Error("no Ready operator pod");
    const exec = (args: string[]) =>
      kubectl.attempt(["exec", "-n", SYSTEM, pod.metadata.name, "--", ...args]);
    const shell = await exec(["sh", "-c", "true"]);
    expect(shell.code).not.toBe(0);
    log(`exec sh: exit ${shell.code}: ${shell.stderr.trim().split("\n").at(-1)}`);
    const uid = await exec(["/nodejs/bin/node", "-e", "process.stdout.write(String(process.getuid()))"]);
    expect(uid.stdout).toBe("65532");
    const write = await exec(["/nodejs/bin/node", "-e", "require('node:fs').writeFileSync('/app/x', 'x')"]);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/EROFS|read-only/i);
  });

  it("kubectl apply -n ai -f examples/openai.yaml, keys answered by a fake provider: READY True", async () => {
    await kubectl(["create", "namespace", FAKE_NS, "--dry-run=client", "-o", "yaml"]).then((yaml) =>
      kubectl(["apply", "-f", "-"], { input: yaml }),
    );
    const configMap = await kubectl([
      ...["create", "configmap", "fake-provider", "-n", FAKE_NS],
      ...[
        "--from-file=test/fakes/",
        "--from-file=test/e2e/fake-provider.ts",
        "--dry-run=client",
        "-o",
        "yaml",
      ],
    ]);
    await kubectl(["apply", "-f", "-"], { input: configMap });
    await kubectl(["apply", "-f", "test/e2e/fake-provider.yaml"]);
    await kubectl([
      "-n",
      FAKE_NS,
      "set",
      "image",
      "deployment/fake-provider",
      `fake-provider=${target.images.node}`,
    ]);
    await kubectl([
      ...["-n", FAKE_NS, "set", "env", "deployment/fake-provider"],
      `FAKE_PROVIDER_KEYS=${[...EXAMPLE_KEYS, LIMITED_KEY].join(",")}`,
    ]);
    await kubectl(["-n", FAKE_NS, "rollout", "status", "deployment/fake-provider", "--timeout=180s"]);

    await kubectl(["create", "namespace", AI, "--dry-run=client", "-o", "yaml"]).then((yaml) =>
      kubectl(["apply", "-f", "-"], { input: yaml }),
    );
    await kubectl(["apply", "-n", AI, "-f", "examples/openai.yaml"]);
    // The example calls api.openai.com and falls back to examples/anthropic.yaml's pool: here the
    // fake provider answers, and there is no fallback.
    await kubectl([
      ...["-n", AI, "patch", "keypool", "openai-prod", "--type", "merge", "-p"],
      JSON.stringify({
        spec: { baseURL: `http://fake-provider.${FAKE_NS}.svc:8080`, fallbackPoolRef: null },
      }),
    ]);
    await kubectl(["-n", AI, "wait", "--for=condition=Ready", "keypool/openai-prod", "--timeout=120s"]);
    const table = await kubectl(["get", "kp", "-n", AI]);
    log(`kubectl get kp -n ai:\n${table.trimEnd()}`);
    expect(table).toMatch(/openai-prod\s+.*True/);
  });

  it("kubectl apply -n ai -f examples/client.yaml: the client gets a key and a chat completion through the proxy", async () => {
    await kubectl(["apply", "-n", AI, "-f", "examples/client.yaml"]);
    await kubectl(["-n", AI, "set", "image", "deployment/example-client", `client=${target.images.curl}`]);
    await kubectl(["-n", AI, "rollout", "status", "deployment/example-client", "--timeout=180s"]);
    const text = await until(
      "the client's first key and chat completion",
      async () => {
        const out = await kubectl(["logs", "-n", AI, "deployment/example-client"]);
        return /"keyId"/.test(out) && /chat\.completion/.test(out) ? out : undefined;
      },
      120_000,
      2_000,
    );
    log(`client: ${text.trim().split("\n").slice(0, 2).join(" | ").slice(0, 300)}`);
  });

  it("a ServiceAccount without the grant gets 403", async () => {
    await kubectl(["-n", AI, "create", "serviceaccount", "no-grant", "--dry-run=client", "-o", "yaml"]).then(
      (yaml) => kubectl(["apply", "-f", "-"], { input: yaml }),
    );
    const out = await runCaller(
      "no-grant",
      `curl -s -o /dev/null -w 'status %{http_code}\\n' ${bearer} ${SERVICE_URL}/v1/pools/${AI}/openai-prod/key`,
      { serviceAccount: "no-grant" },
    );
    expect(out).toContain("status 403");
  });

  it("kubectl rollout restart while a client calls continuously: no failed call", async () => {
    const script = [
      "while true; do",
      `  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 ${bearer} ${SERVICE_URL}/v1/pools/${AI}/openai-prod/key)`,
      '  echo "call $code"',
      "  sleep 0.2",
      "done",
    ].join("\n");
    await kubectl(["delete", "pod", "steady-caller", "-n", AI, "--ignore-not-found", "--wait=true"]);
    await kubectl(["apply", "-f", "-"], {
      input: callerPod({
        name: "steady-caller",
        namespace: AI,
        serviceAccount: "example-client",
        image: target.images.curl,
        script,
      }),
    });
    const calls = async () =>
      (await kubectl(["logs", "steady-caller", "-n", AI]).catch(() => "")).match(/^call \d+$/gm) ?? [];
    await until("the steady caller's first calls", async () =>
      (await calls()).length >= 5 ? true : undefined,
    );
    const started = performance.now();
    await kubectl(["-n", SYSTEM, "rollout", "restart", "deployment/keypool-operator"]);
    await kubectl(["-n", SYSTEM, "rollout", "status", "deployment/keypool-operator", "--timeout=300s"], {
      timeoutMs: 320_000,
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const before = (await calls()).length;
    await until("calls after the restart", async () =>
      (await calls()).length >= before + 10 ? true : undefined,
    );
    const all = await calls();
    await kubectl(["delete", "pod", "steady-caller", "-n", AI, "--wait=false"]);
    const failed = all.filter((line) => line !== "call 200");
    log(
      `rollout restart took ${seconds} s; ${all.length} calls, ${failed.length} failed (${[...new Set(failed)].join(", ")})`,
    );
    expect(failed).toEqual([]);
  });

  it("the leader pod is deleted: the other replica takes the Lease and status writes resume", async () => {
    // After the rollout, the old leader leads on while it drains (--shutdown-delay), then
    // releases the Lease to one of the new pods.
    const leader = await until("the Lease held by a Ready pod", async () => {
      const holder = await leaseHolder();
      return holder ? podOf(holder, (await operatorPods()).filter(ready)) : undefined;
    });
    const started = performance.now();
    await kubectl(["delete", "pod", leader, "-n", SYSTEM, "--wait=false"]);
    const next = await until("another pod holds the Lease", async () => {
      const now = await leaseHolder();
      const pod = now ? podOf(now, await operatorPods()) : undefined;
      return pod && pod !== leader ? pod : undefined;
    });
    const tookOver = (performance.now() - started) / 1000;
    // A status write only the leader makes: the answer to a probe request.
    const requested = new Date().toISOString();
    await kubectl([
      "-n",
      AI,
      "annotate",
      "keypool",
      "openai-prod",
      `keypool.dev/probe-requested-at=${requested}`,
      "--overwrite",
    ]);
    await until("status.lastProbeRequest written by the new leader", async () => {
      const pool = await kubectl.getJson<{ status?: { lastProbeRequest?: string } }>([
        "keypool",
        "openai-prod",
        "-n",
        AI,
      ]);
      return pool?.status?.lastProbeRequest === requested ? true : undefined;
    });
    const resumed = (performance.now() - started) / 1000;
    log(
      `leader ${leader} deleted: ${next} holds the Lease after ${tookOver.toFixed(1)} s; status written after ${resumed.toFixed(1)} s`,
    );
  });

  it("deploy/ha/ on Redis: three replicas share a key's limit (requestsPerMinute 20 serves exactly 20)", async () => {
    await kubectl(["apply", "-f", "-"], { input: redis(SYSTEM, target.images.redis) });
    await kubectl(["-n", SYSTEM, "rollout", "status", "deployment/redis", "--timeout=180s"]);
    await kubectl([
      ...["-n", SYSTEM, "create", "secret", "generic", "keypool-state-store"],
      `--from-literal=url=redis://redis.${SYSTEM}.svc:6379/0`,
      ...["--dry-run=client", "-o", "yaml"],
    ]).then((yaml) => kubectl(["apply", "-f", "-"], { input: yaml }));
    await applyOperator("deploy/ha");
    const pods = await until("three Ready operator pods", async () => {
      const list = (await operatorPods()).filter(ready);
      return list.length === 3 && list.every((p) => p.status?.podIP) ? list : undefined;
    });
    const limited = [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "limited-keys", namespace: AI, labels: { "keypool.dev/secret": "true" } },
        stringData: { key: LIMITED_KEY },
      },
      {
        apiVersion: "keypool.dev/v1alpha1",
        kind: "KeyPool",
        metadata: { name: "limited", namespace: AI },
        spec: {
          provider: "openai",
          baseURL: `http://fake-provider.${FAKE_NS}.svc:8080`,
          keys: [{ secretRef: { name: "limited-keys" }, limits: { requestsPerMinute: 20 } }],
        },
      },
    ];
    await kubectl(["apply", "-f", "-"], { input: limited.map((o) => JSON.stringify(o)).join("\n---\n") });
    await kubectl(["-n", AI, "wait", "--for=condition=Ready", "keypool/limited", "--timeout=120s"]);
    // 60 dispenses, each replica asked in turn by its pod address: 20 to each.
    const ips = pods.map((p) => p.status?.podIP as string);
    const script = [
      `for i in $(seq 1 20); do for ip in ${ips.join(" ")}; do`,
      `  out=$(curl -s -w ' %{http_code}' --max-time 10 ${bearer} http://$ip:8769/v1/pools/${AI}/limited/key)`,
      // The status, and the error code when there is one.
      '  code=$(echo "$out" | sed -n \'s/.*"code":"\\([a-z_]*\\)".*/\\1/p\')',
      '  echo "$ip ${out##* } $code"',
      "done; done",
    ].join("\n");
    const out = await runCaller("ha-caller", script);
    const answers = (out.match(/^\S+ \d+ ?\S*$/gm) ?? []).map((line) => line.trim());
    const served = answers.filter((a) => a.endsWith(" 200"));
    const perReplica = ips.map((ip) => served.filter((a) => a.startsWith(`${ip} `)).length);
    log(
      `deploy/ha: ${answers.length} dispenses over 3 replicas, ${served.length} served (${perReplica.join("/")})`,
    );
    expect(answers).toHaveLength(60);
    expect(served).toHaveLength(20);
    // The others: no usable key (its window is full), on every replica.
    expect(answers.filter((a) => !a.endsWith(" 200") && !a.endsWith(" 503 no_usable_key"))).toEqual([]);
  });
});
