/**
 * A smoke test of a running cluster, from the inside: in a namespace of its own (PodSecurity
 * "restricted" enforced), a Deployment of cluster-probe behind a Service, and a client pod that
 * resolves the Service by name through CoreDNS, fetches from it through kube-proxy, and reaches
 * kube-apiserver through the `kubernetes` Service, and cannot reach anything outside the
 * cluster's addresses. From the machine, the Service answers on its NodePort at the node
 * address. `kubectl logs`, `exec` and `port-forward` go through kube-apiserver to the kubelet,
 * and a privileged pod must be refused by admission.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { Kubectl } from "./kube.ts";
import { NETWORK } from "./layout.ts";

export interface SmokeCheck {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

const restricted = {
  runAsNonRoot: true,
  runAsUser: 65534,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

export function smokeObjects(namespace: string, image: string) {
  const labels = { app: "web" };
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace, labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              {
                name: "web",
                image,
                imagePullPolicy: "Never",
                args: ["serve", ":8080"],
                ports: [{ containerPort: 8080 }],
                readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
                securityContext: restricted,
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace },
      spec: { type: "NodePort", selector: labels, ports: [{ port: 80, targetPort: 8080 }] },
    },
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "client", namespace },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          { name: "client", image, imagePullPolicy: "Never", args: ["sleep"], securityContext: restricted },
        ],
      },
    },
  ];
}

/** `kubectl port-forward` to the Service, one request through it, then stops it. */
async function portForward(kubectl: Kubectl, ns: string): Promise<string> {
  const [cmd, args] = kubectl.argv(["-n", ns, "port-forward", "service/web", ":80"]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const local = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`no "Forwarding from" within 10 s: ${out}`)), 10_000);
      const onData = (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const m = /Forwarding from (127\.0\.0\.1:\d+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`kubectl port-forward exited (${code}): ${out}`));
      });
    });
    const res = await fetch(`http://${local}/`, { signal: AbortSignal.timeout(5_000) });
    return `${local}: ${res.status} ${(await res.text()).trim()}`;
  } finally {
    child.kill();
  }
}

/** Runs the checks; the namespace is deleted afterwards (without waiting). */
export async function smokeTest(
  kubectl: Kubectl,
  image: string,
  log: (line: string) => void,
): Promise<SmokeCheck[]> {
  const ns = `cluster-smoke-${randomBytes(3).toString("hex")}`;
  const checks: SmokeCheck[] = [];
  // Each check retries for a while: Services, endpoints and DNS records propagate
  // asynchronously (kube-proxy's sync, CoreDNS's watch), as in any cluster.
  async function check(name: string, fn: () => Promise<string>, retryMs = 20_000) {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const detail = await fn();
        checks.push({
          name,
          ok: true,
          detail: attempt > 1 ? `${detail} (attempt ${attempt})` : detail,
          ms: Date.now() - started,
        });
        break;
      } catch (err) {
        if (Date.now() - started < retryMs) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        checks.push({
          name,
          ok: false,
          detail: `${(err as Error).message} (after ${attempt} attempts)`,
          ms: Date.now() - started,
        });
        break;
      }
    }
    const c = checks.at(-1);
    if (c) log(`${c.ok ? "ok  " : "FAIL"} ${c.name} (${c.ms} ms): ${c.detail.split("\n")[0]}`);
    return c?.ok ?? false;
  }
  const run = async (args: string[], timeoutMs = 60_000) => {
    const r = await kubectl(args, { allowFail: true, timeoutMs });
    if (r.code !== 0) throw new Error((r.stderr || r.stdout).trim());
    return r.stdout.trim();
  };
  const exec = (...args: string[]) => run(["-n", ns, "exec", "client", "--", "/probe", ...args]);
  try {
    const objects = smokeObjects(ns, image);
    await kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
    });
    const ready = await check(
      "Deployment and client pod ready",
      async () => {
        await run(["-n", ns, "rollout", "status", "deployment/web", "--timeout=120s"], 130_000);
        await run(["-n", ns, "wait", "pod/client", "--for=condition=Ready", "--timeout=60s"], 70_000);
        return run(["-n", ns, "get", "pods", "-o", "wide", "--no-headers"]);
      },
      0,
    );
    if (ready) {
      await check("Service name resolves through CoreDNS", () =>
        exec("lookup", `web.${ns}.svc.cluster.local`),
      );
      await check("Service answers by its full name", () =>
        exec("get", `http://web.${ns}.svc.cluster.local/`),
      );
      await check("Service answers by its short name (search path)", () => exec("get", "http://web/"));
      await check("kube-apiserver reachable through the kubernetes Service", () =>
        exec("get", "https://kubernetes.default.svc/healthz"),
      );
      await check("names outside the cluster get NXDOMAIN (nothing leaves)", async () => {
        const r = await kubectl(["-n", ns, "exec", "client", "--", "/probe", "lookup", "example.com"], {
          allowFail: true,
        });
        if (r.code === 0) throw new Error(`example.com resolved: ${r.stdout.trim()}`);
        if (!/no such host/.test(r.stdout + r.stderr)) throw new Error((r.stderr || r.stdout).trim());
        return "no such host";
      });
      await check(
        "pods cannot reach beyond the cluster's addresses (refused at once)",
        async () => {
          const started = Date.now();
          // 203.0.113.1: TEST-NET-3, an address that is never routed anywhere.
          const r = await kubectl(
            ["-n", ns, "exec", "client", "--", "/probe", "get", "http://203.0.113.1/"],
            {
              allowFail: true,
            },
          );
          if (r.code === 0) throw new Error(`reached 203.0.113.1: ${r.stdout.trim()}`);
          const ms = Date.now() - started;
          if (ms > 5_000) throw new Error(`took ${ms} ms to fail: not refused, dropped somewhere`);
          return (r.stderr || r.stdout).trim().split("\n")[0] ?? "";
        },
        0,
      );
      await check("the Service's NodePort answers on the node address, from the machine", async () => {
        const port = await run([
          "-n",
          ns,
          "get",
          "service",
          "web",
          "-o",
          "jsonpath={.spec.ports[0].nodePort}",
        ]);
        const res = await fetch(`http://${NETWORK.nodeIp}:${port}/`, { signal: AbortSignal.timeout(5_000) });
        return `${NETWORK.nodeIp}:${port}: ${res.status} ${(await res.text()).trim()}`;
      });
      await check("kubectl port-forward", () => portForward(kubectl, ns));
      await check("kubectl logs", async () => {
        const out = await run(["-n", ns, "logs", "deployment/web"]);
        if (!out.includes("serving on")) throw new Error(`unexpected log: ${out}`);
        return out;
      });
    }
    await check("PodSecurity refuses a privileged pod", async () => {
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "privileged", namespace: ns },
        spec: {
          containers: [{ name: "c", image, imagePullPolicy: "Never", securityContext: { privileged: true } }],
        },
      };
      const r = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(pod), allowFail: true });
      if (r.code === 0) throw new Error("a privileged pod was admitted");
      if (!/violates PodSecurity/.test(r.stderr)) throw new Error(r.stderr.trim());
      return 'violates PodSecurity "restricted"';
    });
  } finally {
    await kubectl(["delete", "namespace", ns, "--wait=false"], { allowFail: true });
  }
  return checks;
}
