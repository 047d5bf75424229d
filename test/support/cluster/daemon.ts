/**
 * The cluster daemon: the long-lived process `up` starts in the background (its own session),
 * which brings the cluster up step by step and then holds it. Every component runs under a
 * supervisor whose pipe it holds, so when the daemon exits, or is killed, they all stop.
 * SIGTERM/SIGINT stop them (the kubelet and the others, the pods' processes, containerd, then
 * kube-apiserver and etcd) and exit; `down` (teardown.ts) then cleans up what outlives
 * processes (pods' shims, mounts, interfaces, iptables, cgroups).
 *
 * Order: host (bridge, sysctls, cgroups, egress isolation) → certificates → etcd and
 * kube-apiserver (the harness) → containerd → images → kubelet (Node Ready) →
 * kube-controller-manager, kube-scheduler, kube-proxy → CoreDNS. Progress goes to stdout
 * (logs/daemon.log) and state.json.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import type { ControlPlaneBinaries } from "../control-plane/binaries.ts";
import { generateControlPlaneCerts } from "../control-plane/certs.ts";
import { apiServerNames, ControlPlane } from "../control-plane/control-plane.ts";
import type { ClusterBinaries } from "./build.ts";
import { CNI_CONF_FILE, cniConfList } from "./cni-config.ts";
import { command, hasCommand } from "./command.ts";
import { type Component, startComponent, stopComponent, waitUntilReady } from "./components.ts";
import {
  apiServerClusterFlags,
  controllerManagerFlags,
  kubeProxyConfigYaml,
  kubeProxyFlags,
  schedulerFlags,
} from "./components-config.ts";
import { containerdConfigToml } from "./containerd-config.ts";
import { corednsManifests } from "./coredns.ts";
import { createBridge, createCgroupRoot, isolatePods, SYSCTLS, setSysctls } from "./host.ts";
import { missingSystemDirs, nftTables } from "./host-files.ts";
import { killPodProcesses } from "./host-processes.ts";
import { importImage } from "./images.ts";
import { sharedChainsNow } from "./iptables.ts";
import { kubeletConfigYaml, kubeletFlags } from "./kubelet-config.ts";
import { apply, kubectlFor, nodeReady } from "./kube.ts";
import { type ClusterLayout, imageRefs, NAMES, NETWORK, PORTS } from "./layout.ts";
import { issueClusterCerts, pkiPaths, writeClusterPki, writeKubeconfigs } from "./pki.ts";
import { type ClusterState, writeState } from "./state.ts";

export const CNI_BIN_DIR = "/usr/lib/cni";
const CNI_PLUGINS = ["bridge", "host-local", "portmap", "loopback"];
const HOST_TOOLS = [
  "ip",
  "iptables",
  "iptables-save",
  "iptables-restore",
  "containerd",
  "runc",
  "ctr",
  "umount",
  "conntrack",
];

export class ClusterStartError extends Error {
  override name = "ClusterStartError";
  readonly code = "cluster_start_failed";
}

/** Fails early, naming what is missing, before anything on the machine changes. */
export async function checkPrerequisites(): Promise<void> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push("run as root (containerd, the kubelet and CNI need it)");
  for (const tool of HOST_TOOLS) if (!(await hasCommand(tool))) problems.push(`${tool} is not installed`);
  for (const plugin of CNI_PLUGINS) {
    if (!(await hasCommand(join(CNI_BIN_DIR, plugin))))
      problems.push(`${CNI_BIN_DIR}/${plugin} is missing (containernetworking-plugins)`);
  }
  if (problems.length > 0)
    throw new ClusterStartError(`cannot start the cluster:\n  ${problems.join("\n  ")}`);
}

/** GET a URL on loopback; TLS unverified (components' self-signed healthz), status only. */
function healthz(url: string): Promise<boolean> {
  if (url.startsWith("http://")) return fetch(url).then((r) => r.ok);
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

export interface DaemonDeps {
  layout: ClusterLayout;
  controlPlane: ControlPlaneBinaries;
  cluster: ClusterBinaries;
  log: (line: string) => void;
}

export class ClusterDaemon {
  readonly #deps: DaemonDeps;
  readonly #components: Component[] = [];
  #plane: ControlPlane | undefined;
  #state: ClusterState;
  #stopping = false;

  constructor(deps: DaemonDeps) {
    this.#deps = deps;
    this.#state = {
      daemonPid: process.pid,
      phase: "starting",
      step: "prerequisites",
      startedAt: new Date().toISOString(),
      sysctls: {},
      preexistingChains: [],
    };
  }

  async #step(step: string) {
    if (this.#stopping) throw new ClusterStartError("stopping: start aborted");
    this.#state.step = step;
    this.#deps.log(`[${new Date().toISOString().slice(11, 19)}] ${step}`);
    await writeState(this.#deps.layout.stateFile, this.#state);
  }

  async #start(name: string, binary: string, args: string[]): Promise<Component> {
    if (this.#stopping) throw new ClusterStartError("stopping: start aborted");
    const c = await startComponent(this.#deps.layout, name, binary, args);
    this.#components.push(c);
    return c;
  }

  /** Brings the cluster up; resolves once CoreDNS is available. */
  async start(): Promise<void> {
    const { layout, controlPlane, cluster, log } = this.#deps;
    const mkdirs = [
      layout.logs,
      layout.pids,
      layout.configs,
      layout.cniConfDir,
      layout.cniIpamDir,
      layout.staticPods,
    ];
    await Promise.all(mkdirs.map((d) => mkdir(d, { recursive: true })));
    await this.#step("checking prerequisites");
    await checkPrerequisites();

    await this.#step("preparing the host: bridge, sysctls, cgroups");
    this.#state.preexistingChains = await sharedChainsNow();
    this.#state.preexistingNftTables = await nftTables();
    this.#state.createdDirs = await missingSystemDirs();
    // Record what we are about to change before changing it, so an interrupted run restores it.
    for (const path of SYSCTLS) {
      const value = (await readFile(path, "utf8").catch(() => "1")).trim();
      if (value !== "1") this.#state.sysctls[path] = value;
    }
    await writeState(layout.stateFile, this.#state);
    await setSysctls();
    await createBridge();
    await createCgroupRoot();
    await isolatePods();

    await this.#step("issuing certificates");
    const cpCerts = await generateControlPlaneCerts(
      apiServerNames({ address: NETWORK.nodeIp, serviceClusterIpRange: NETWORK.serviceCidr }),
    );
    const certs = await issueClusterCerts(cpCerts.ca);
    const pki = pkiPaths({ pki: layout.pki, kubeconfigs: layout.kubeconfigs });
    await writeClusterPki(cpCerts.ca, certs, pki);

    await this.#step("starting etcd and kube-apiserver");
    this.#plane = await ControlPlane.start({
      binaries: controlPlane,
      dir: layout.controlPlane,
      address: NETWORK.nodeIp,
      serviceClusterIpRange: NETWORK.serviceCidr,
      authorizationModes: ["Node", "RBAC"],
      certs: cpCerts,
      extraApiServerFlags: apiServerClusterFlags({
        kubeletClientCert: pki.apiServerKubeletClientCert,
        kubeletClientKey: pki.apiServerKubeletClientKey,
        caFile: pki.caFile,
      }),
      readyTimeoutMs: 120_000,
      log,
    });
    const plane = this.#plane;
    this.#state.apiServer = plane.server;
    this.#state.kubernetesVersion = plane.version.gitVersion;
    await writeKubeconfigs(plane.server, cpCerts.ca, certs, pki);
    await writeFile(layout.kubeconfig, plane.kubeconfigYaml(), { mode: 0o600 });
    this.#state.kubeconfig = layout.kubeconfig;
    const kubectlPath = plane.kubectl;
    if (!kubectlPath) throw new ClusterStartError("the control-plane binaries have no kubectl");
    const kubectl = kubectlFor(kubectlPath, layout.kubeconfig, layout.kubectlCache);

    await this.#step("starting containerd");
    const refs = imageRefs(cluster.versions);
    const containerdConfig = join(layout.configs, "containerd.toml");
    await writeFile(
      containerdConfig,
      containerdConfigToml(layout, { sandboxImage: refs.pause, cniBinDir: CNI_BIN_DIR, runc: "runc" }),
    );
    await writeFile(
      join(layout.cniConfDir, CNI_CONF_FILE),
      `${JSON.stringify(cniConfList({ ipamDir: layout.cniIpamDir }), null, 2)}\n`,
    );
    const containerd = await this.#start("containerd", "containerd", ["--config", containerdConfig]);
    await waitUntilReady(containerd, 60_000, async () => {
      const r = await command("ctr", ["--address", layout.containerd.socket, "version"], { allowFail: true });
      return r.code === 0;
    });

    await this.#step("importing the pause, CoreDNS and cluster-probe images");
    for (const archive of Object.values(cluster.images)) await importImage(layout, archive);

    await this.#step("starting the kubelet");
    const kubeletPaths = {
      caFile: pki.caFile,
      tlsCertFile: pki.kubeletServingCert,
      tlsKeyFile: pki.kubeletServingKey,
      kubeconfig: pki.kubeconfigs.kubelet,
      configFile: join(layout.configs, "kubelet.yaml"),
    };
    await writeFile(kubeletPaths.configFile, kubeletConfigYaml(layout, kubeletPaths));
    const kubelet = await this.#start("kubelet", cluster.kubelet, kubeletFlags(layout, kubeletPaths));
    await waitUntilReady(
      kubelet,
      120_000,
      () => nodeReady(kubectl, NAMES.nodeName),
      `node ${NAMES.nodeName} Ready`,
    );

    await this.#step("starting kube-controller-manager, kube-scheduler and kube-proxy");
    const controllerManager = await this.#start(
      "kube-controller-manager",
      cluster.kubeControllerManager,
      controllerManagerFlags({
        kubeconfig: pki.kubeconfigs.controllerManager,
        caFile: pki.caFile,
        caKeyFile: pki.caKeyFile,
        serviceAccountKeyFile: join(layout.controlPlane, "pki", "sa.key"),
        flexVolumeDir: layout.volumePlugins,
      }),
    );
    const scheduler = await this.#start(
      "kube-scheduler",
      cluster.kubeScheduler,
      schedulerFlags(pki.kubeconfigs.scheduler),
    );
    const proxyConfig = join(layout.configs, "kube-proxy.yaml");
    await writeFile(proxyConfig, kubeProxyConfigYaml(NAMES.nodeName, pki.kubeconfigs.kubeProxy));
    const proxy = await this.#start("kube-proxy", cluster.kubeProxy, kubeProxyFlags(proxyConfig));
    await Promise.all([
      waitUntilReady(controllerManager, 90_000, () =>
        healthz(`https://127.0.0.1:${PORTS.controllerManager}/healthz`),
      ),
      waitUntilReady(scheduler, 90_000, () => healthz(`https://127.0.0.1:${PORTS.scheduler}/healthz`)),
      waitUntilReady(proxy, 90_000, () => healthz(`http://127.0.0.1:${PORTS.kubeProxyHealthz}/healthz`)),
    ]);

    await this.#step("deploying CoreDNS");
    await apply(kubectl, corednsManifests(refs.coredns));
    await waitUntilReady(
      kubelet,
      180_000,
      async () => {
        const r = await kubectl(
          ["-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=5s"],
          { allowFail: true },
        );
        if (r.code !== 0) throw new Error((r.stderr || r.stdout).trim());
        return true;
      },
      "CoreDNS to be available",
    );

    this.#state.phase = "ready";
    this.#state.readyAt = new Date().toISOString();
    await this.#step("ready");
  }

  /** Marks the start failed (state.json says why). */
  async fail(err: Error): Promise<void> {
    this.#state.phase = "failed";
    this.#state.error = err.message;
    await writeState(this.#deps.layout.stateFile, this.#state).catch(() => undefined);
  }

  /**
   * Stops the components: those that talk to containerd and the API first (together), then
   * containerd, then kube-apiserver and etcd.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#state.phase = "stopping";
    await writeState(this.#deps.layout.stateFile, this.#state).catch(() => undefined);
    const started = Date.now();
    const took = (what: string) => this.#deps.log(`daemon: stopped ${what} (${Date.now() - started} ms)`);
    const containerd = this.#components.filter((c) => c.name === "containerd");
    await Promise.all(this.#components.filter((c) => c.name !== "containerd").map(stopComponent));
    took("kubelet, kube-proxy, kube-scheduler, kube-controller-manager");
    // Pods' watches (CoreDNS...) would hold kube-apiserver's shutdown until its supervisor's SIGKILL.
    const killed = await killPodProcesses(this.#deps.layout.dir);
    took(`${killed} pod processes (SIGKILL)`);
    await Promise.all(containerd.map(stopComponent));
    took("containerd");
    await this.#plane?.stop();
    took("kube-apiserver and etcd");
  }
}
