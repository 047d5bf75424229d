/**
 * node test/support/cluster/main.ts <command>   (npm run cluster -- <command>)
 *
 * A single-node Kubernetes cluster on this machine from official components, no Docker:
 * etcd + kube-apiserver (the control-plane harness), kube-controller-manager, kube-scheduler,
 * kubelet on Debian's containerd + runc, kube-proxy (iptables), CNI bridge, CoreDNS.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { findBinaries } from "../control-plane/binaries.ts";
import { ensureBinaries } from "../control-plane/build.ts";
import { buildClusterBinaries, clusterCacheDir, findClusterBinaries } from "./build.ts";
import { describeCluster, down, leftovers, loadImage, status, up } from "./cluster.ts";
import { ClusterDaemon } from "./daemon.ts";
import { kubectlFor } from "./kube.ts";
import { clusterLayout, imageRefs, NETWORK, runDir } from "./layout.ts";
import { smokeTest } from "./smoke.ts";
import { formatLeftovers } from "./leftovers.ts";

const USAGE = `usage: node test/support/cluster/main.ts <command> [--dir <run dir>]

commands:
  build                     build kubelet, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS
                            and the pause/cluster-probe images into ${clusterCacheDir()}
                            (and kube-apiserver, etcd, kubectl, as the control-plane harness does)
  up [--kubeconfig <path>]  start the cluster in the background; returns once CoreDNS is available,
                            printing the admin kubeconfig's path (also written to <path>)
  status                    the components, their pids, the node and pods
  down                      stop everything and remove it from the machine: processes, mounts,
                            interfaces, iptables chains, cgroups (also after an interrupted up)
  smoke                     check the running cluster from inside: DNS, Services, kube-proxy, logs,
                            exec, PodSecurity (a namespace of its own, deleted afterwards)
  leftovers                 list what of the cluster is still on the machine (exit 1 if anything)
  load-image <archive>      import an image archive (OCI or docker) into the cluster's containerd

--dir defaults to $KEYPOOL_CLUSTER_DIR or <tmp>/keypool-cluster. Pods ${NETWORK.clusterCidr},
Services ${NETWORK.serviceCidr}, cluster DNS ${NETWORK.dnsIp}, node ${NETWORK.nodeIp}.`;

const log = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

async function runDaemon(dir: string): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const layout = clusterLayout(dir);
  const [controlPlane, cluster] = await Promise.all([findBinaries(), findClusterBinaries()]);
  if (!controlPlane || !cluster) {
    out("daemon: binaries missing (up builds them before starting the daemon)");
    return 1;
  }
  const daemon = new ClusterDaemon({ layout, controlPlane, cluster, log: out });
  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    out(`daemon: ${why}: stopping the cluster`);
    stopping ??= daemon.stop().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => stop("SIGHUP"));
  try {
    await daemon.start();
  } catch (err) {
    if (stopping) return new Promise(() => {}); // stop() exits
    out(`daemon: start failed: ${(err as Error).stack ?? String(err)}`);
    await daemon.fail(err as Error);
    await daemon.stop();
    return 1;
  }
  out("daemon: cluster ready; holding it until SIGTERM (down)");
  return new Promise(() => {}); // until a signal
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: "string" },
      kubeconfig: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [cmd, ...rest] = positionals;
  if (values.help || !cmd) {
    process.stdout.write(`${USAGE}\n`);
    return cmd || values.help ? 0 : 2;
  }
  const dir = runDir(process.env, values.dir);
  switch (cmd) {
    case "build": {
      const started = Date.now();
      await ensureBinaries({ log });
      const built = await buildClusterBinaries({ log });
      log(`ready: ${built.dir} (${seconds(started)})`);
      return 0;
    }
    case "up": {
      const started = Date.now();
      const result = await up({
        dir,
        log,
        ...(values.kubeconfig ? { kubeconfig: resolve(values.kubeconfig) } : {}),
      });
      log(
        result.alreadyUp
          ? `already up (daemon pid ${result.state.daemonPid})`
          : `cluster up in ${seconds(started)}`,
      );
      log(`kube-apiserver: ${result.apiServer}`);
      log(`kubeconfig:     ${values.kubeconfig ? resolve(values.kubeconfig) : result.kubeconfig}`);
      const kubectl = (await findBinaries())?.kubectl ?? "kubectl";
      log(`try:            ${kubectl} --kubeconfig ${result.kubeconfig} get pods -A`);
      process.stdout.write(`${result.kubeconfig}\n`);
      return 0;
    }
    case "down": {
      const started = Date.now();
      const left = await down({ dir, log });
      if (left.length > 0) {
        log(`down finished in ${seconds(started)} but these remain:\n${formatLeftovers(left)}`);
        return 1;
      }
      log(`down: nothing of the cluster is left (${seconds(started)})`);
      return 0;
    }
    case "status": {
      const s = await status(dir);
      const lines = [
        `run dir:   ${dir}`,
        `phase:     ${s.state?.phase ?? "not started"}${s.state?.step ? ` (${s.state.step})` : ""}`,
        `daemon:    ${s.state?.daemonPid ? `pid ${s.state.daemonPid} ${s.daemonAlive ? "running" : "gone"}` : "-"}`,
        ...(s.state?.error ? [`error:     ${s.state.error}`] : []),
        ...(s.state?.apiServer
          ? [`apiserver: ${s.state.apiServer} (${s.state.kubernetesVersion ?? "?"})`]
          : []),
        ...(s.state?.kubeconfig ? [`kubeconfig: ${s.state.kubeconfig}`] : []),
        ...(s.state?.phase === "down" ? [`logs:      ${s.layout.logs} (the last run's)`] : []),
        ...s.components.map(
          (c) => `  ${c.name.padEnd(24)} ${c.pid ?? "-"} ${c.alive ? "running" : "not running"}`,
        ),
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
      const kubectl = (await findBinaries())?.kubectl;
      if (s.daemonAlive && kubectl && s.state?.kubeconfig) {
        process.stdout.write(`${await describeCluster(kubectl, s.layout)}\n`);
      }
      return s.daemonAlive && s.state?.phase === "ready" ? 0 : 3;
    }
    case "smoke": {
      const s = await status(dir);
      const [controlPlane, cluster] = await Promise.all([findBinaries(), findClusterBinaries()]);
      if (!s.daemonAlive || s.state?.phase !== "ready" || !controlPlane?.kubectl || !cluster) {
        log(`no ready cluster in ${dir}`);
        return 3;
      }
      const started = Date.now();
      const kubectl = kubectlFor(controlPlane.kubectl, s.layout.kubeconfig, s.layout.kubectlCache);
      const checks = await smokeTest(kubectl, imageRefs(cluster.versions).probe, log);
      const failed = checks.filter((c) => !c.ok).length;
      log(`${checks.length - failed}/${checks.length} checks passed in ${seconds(started)}`);
      return failed === 0 ? 0 : 1;
    }
    case "leftovers": {
      const left = await leftovers(dir);
      if (left.length > 0) process.stdout.write(`${formatLeftovers(left)}\n`);
      return left.length > 0 ? 1 : 0;
    }
    case "load-image": {
      const [archive] = rest;
      if (!archive) {
        log("load-image needs an archive path");
        return 2;
      }
      const started = Date.now();
      const refs = await loadImage(dir, resolve(archive));
      log(`imported ${refs.join(", ") || "(no named image)"} in ${seconds(started)}`);
      return 0;
    }
    case "daemon":
      return runDaemon(dir);
    default:
      log(`unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    log(`cluster: ${err.message}`);
    process.exit(1);
  },
);
