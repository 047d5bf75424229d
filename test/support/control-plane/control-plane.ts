/**
 * A real Kubernetes control plane (etcd + kube-apiserver) on loopback, the way
 * controller-runtime's envtest starts one: free ports, temp dirs, generated certificates,
 * RBAC authorization, ServiceAccount token issuing, an admin kubeconfig (O=system:masters).
 *
 * Each process runs under supervise.ts, so none outlives the harness even when it is killed.
 *
 * For outage drills, kube-apiserver can be stopped and started again on the same port, etcd and
 * certificates (stopApiServer/startApiServer), or paused and resumed (SIGSTOP/SIGCONT: a hung
 * API server). With `dir`, the whole control plane lives in a directory that outlasts it, so it
 * can be stopped and the same cluster started again.
 *
 * A caller building a whole cluster around it (test/support/cluster) passes the address pods
 * reach it at, the Service range, the authorizers and certificates it signs more with.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import type { ControlPlaneBinaries } from "./binaries.ts";
import { type ControlPlaneCerts, generateControlPlaneCerts } from "./certs.ts";
import { removeStaleTempDirs } from "./processes.ts";

const SUPERVISOR = fileURLToPath(new URL("./supervise.ts", import.meta.url));

export interface ControlPlaneOptions {
  binaries: ControlPlaneBinaries;
  /** How long to wait for kube-apiserver's /readyz (this 2-core machine needs up to a minute). */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, appended after the defaults. */
  extraApiServerFlags?: string[];
  /**
   * The address kube-apiserver binds to and advertises (the `kubernetes` Service's endpoint).
   * Default 127.0.0.1. A node's pods cannot reach loopback, so a cluster with a kubelet passes
   * an address on its own interface; `server` and the kubeconfig use it too.
   */
  address?: string;
  /** `--service-cluster-ip-range`. Default 10.0.0.0/24. */
  serviceClusterIpRange?: string;
  /** `--authorization-mode`, in order. Default ["RBAC"]; a cluster with kubelets adds "Node" first. */
  authorizationModes?: string[];
  /**
   * Certificates to use instead of new ones (a kept `dir` uses them only the first time), for a
   * caller that signs more certificates with the CA before the API server starts: those its
   * extra flags name (e.g. --kubelet-client-certificate).
   */
  certs?: ControlPlaneCerts;
  /**
   * A directory to keep the control plane in: certificates, ports (control-plane.json) and
   * etcd's data. Started again with the same dir, the same cluster comes back; stop() leaves it.
   * Default: a new temp dir, removed by stop().
   */
  dir?: string;
  log?: (line: string) => void;
}

export interface KubernetesVersion {
  gitVersion: string;
  major: string;
  minor: string;
}

export class ControlPlaneError extends Error {
  override name = "ControlPlaneError";
  readonly code = "control_plane_start_failed";
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

const DIR_PREFIX = "keypool-control-plane-";

interface Supervised {
  name: string;
  child: ChildProcess;
  logPath: string;
  /** Where supervise.ts writes the pid of the process it runs. */
  pidFile: string;
  exited: Promise<number | null>;
}

/** What a kept directory remembers between runs (its private keys: the file is mode 0600). */
interface KeptState {
  certs: ControlPlaneCerts;
  /** API server, etcd client, etcd peer. */
  ports: number[];
}

const STATE_FILE = "control-plane.json";

/** The state kept in `dir`, or new state written there the first time. */
async function keptState(dir: string, options: ControlPlaneOptions): Promise<KeptState> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, STATE_FILE);
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (text !== undefined) return JSON.parse(text) as KeptState;
  const [certs, ...ports] = await Promise.all([
    options.certs ?? generateControlPlaneCerts(apiServerNames(options)),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const state = { certs, ports };
  await writeFile(path, JSON.stringify(state), { mode: 0o600 });
  return state;
}

/**
 * The names the API server's certificate needs besides loopback: its bind address and the
 * `kubernetes` Service's IP (the first address of the service range), which pods connect to.
 */
export function apiServerNames(options: Pick<ControlPlaneOptions, "address" | "serviceClusterIpRange">) {
  const ips = [
    options.address ?? "127.0.0.1",
    firstServiceIp(options.serviceClusterIpRange ?? SERVICE_RANGE),
  ];
  return {
    ips: [...new Set(ips)],
    dns: ["kubernetes", "kubernetes.default", "kubernetes.default.svc.cluster.local"],
  };
}

const SERVICE_RANGE = "10.0.0.0/24";

/** The first usable address of an IPv4 range ("10.0.0.0/24" → "10.0.0.1"): the `kubernetes` Service's. */
export function firstServiceIp(range: string): string {
  const [base = "", bits = ""] = range.split("/");
  const octets = base.split(".").map(Number);
  const prefix = Number(bits);
  if (
    octets.length !== 4 ||
    octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255) ||
    !Number.isInteger(prefix) ||
    prefix < 1 ||
    prefix > 30
  ) {
    throw new Error(`not an IPv4 range: ${range}`);
  }
  const size = 2 ** (32 - prefix);
  const network = Math.floor(octets.reduce((acc, o) => acc * 256 + o, 0) / size) * size;
  return [24, 16, 8, 0].map((shift) => Math.floor((network + 1) / 2 ** shift) % 256).join(".");
}

/** Waits until `pid` shows as stopped in /proc (Linux; elsewhere it returns at once). */
async function waitUntilStopped(pid: number, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined) return;
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "T" || state === "t") return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} did not stop within ${timeoutMs} ms`);
}

export class ControlPlane {
  readonly dir: string;
  readonly certs: ControlPlaneCerts;
  readonly binaries: ControlPlaneBinaries;
  readonly apiServerPort: number;
  readonly etcdPort: number;
  readonly etcdPeerPort: number;
  /** Admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfigPath: string;
  readonly #options: ControlPlaneOptions;
  /** Whether `dir` is the caller's, kept after stop(). */
  readonly #kept: boolean;
  #etcd: Supervised | undefined;
  #apiServer: Supervised | undefined;
  /** The pid of kube-apiserver while it is paused. */
  #pausedPid: number | undefined;
  #version: KubernetesVersion | undefined;
  readonly #onExit = () => this.#killNow();

  private constructor(dir: string, certs: ControlPlaneCerts, ports: number[], options: ControlPlaneOptions) {
    this.dir = dir;
    this.#kept = options.dir !== undefined;
    this.certs = certs;
    this.binaries = options.binaries;
    [this.apiServerPort, this.etcdPort, this.etcdPeerPort] = ports as [number, number, number];
    this.kubeconfigPath = join(dir, "admin.kubeconfig");
    this.#options = options;
  }

  /** Starts etcd and kube-apiserver and waits until the API server is ready. */
  static async start(options: ControlPlaneOptions): Promise<ControlPlane> {
    await removeStaleTempDirs(DIR_PREFIX);
    let dir: string;
    let state: KeptState;
    if (options.dir !== undefined) {
      dir = resolve(options.dir);
      state = await keptState(dir, options);
    } else {
      dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
      await writeFile(join(dir, "owner.pid"), String(process.pid));
      const [certs, ...ports] = await Promise.all([
        options.certs ?? generateControlPlaneCerts(apiServerNames(options)),
        freePort(),
        freePort(),
        freePort(),
      ]);
      state = { certs, ports };
    }
    const plane = new ControlPlane(dir, state.certs, state.ports, options);
    process.once("exit", plane.#onExit);
    try {
      await plane.#writeFiles();
      await plane.#startEtcd();
      await plane.startApiServer();
      return plane;
    } catch (err) {
      await plane.stop();
      throw err;
    }
  }

  /** The address kube-apiserver listens on (127.0.0.1 unless the options name another). */
  get address(): string {
    return this.#options.address ?? "127.0.0.1";
  }

  get server(): string {
    return `https://${this.address}:${this.apiServerPort}`;
  }

  get version(): KubernetesVersion {
    if (!this.#version) throw new Error("control plane not started");
    return this.#version;
  }

  get kubectl(): string | undefined {
    return this.binaries.kubectl;
  }

  get #pki() {
    return join(this.dir, "pki");
  }

  async #writeFiles() {
    await mkdir(this.#pki, { recursive: true });
    const files: Record<string, string> = {
      "ca.crt": this.certs.ca.cert,
      "serving.crt": this.certs.serving.cert,
      "serving.key": this.certs.serving.key,
      "sa.pub": this.certs.serviceAccount.publicKey,
      "sa.key": this.certs.serviceAccount.privateKey,
    };
    await Promise.all(
      Object.entries(files).map(([name, content]) =>
        writeFile(join(this.#pki, name), content, { mode: 0o600 }),
      ),
    );
    await writeFile(this.kubeconfigPath, this.kubeconfigYaml(), { mode: 0o600 });
  }

  /** A kubeconfig for this control plane: the admin identity, or a bearer token (a ServiceAccount's). */
  kubeconfigYaml(user: { token: string; name?: string } | undefined = undefined): string {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const userName = user?.name ?? (user ? "token-user" : "admin");
    return stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "keypool-test",
          cluster: { server: this.server, "certificate-authority-data": b64(this.certs.ca.cert) },
        },
      ],
      users: [
        {
          name: userName,
          user: user
            ? { token: user.token }
            : {
                "client-certificate-data": b64(this.certs.admin.cert),
                "client-key-data": b64(this.certs.admin.key),
              },
        },
      ],
      contexts: [{ name: "keypool-test", context: { cluster: "keypool-test", user: userName } }],
      "current-context": "keypool-test",
    });
  }

  async #spawn(name: string, binary: string, args: string[]): Promise<Supervised> {
    const logPath = join(this.dir, `${name}.log`);
    const pidFile = join(this.dir, `${name}.pid`);
    await rm(pidFile, { force: true });
    const log = await open(logPath, "a");
    const child = spawn(process.execPath, [SUPERVISOR, binary, ...args], {
      stdio: ["pipe", log.fd, log.fd],
      cwd: this.dir,
      env: { ...process.env, SUPERVISE_PID_FILE: pidFile },
    });
    await log.close();
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    return { name, child, logPath, pidFile, exited };
  }

  async #startEtcd() {
    const { etcdPort, etcdPeerPort } = this;
    const peer = `http://127.0.0.1:${etcdPeerPort}`;
    this.#etcd = await this.#spawn("etcd", this.binaries.etcd, [
      "--name=keypool-test",
      `--data-dir=${join(this.dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=keypool-test=${peer}`,
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ]);
    await this.#waitFor(this.#etcd, 30_000, async () => {
      const res = await fetch(`http://127.0.0.1:${etcdPort}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === "true";
    });
  }

  /** Starts kube-apiserver (again, after stopApiServer) on the same port and etcd. */
  async startApiServer(): Promise<void> {
    if (this.#apiServer) throw new Error("kube-apiserver is already running");
    const pki = this.#pki;
    this.#apiServer = await this.#spawn("kube-apiserver", this.binaries.kubeApiserver, [
      `--advertise-address=${this.address}`,
      `--bind-address=${this.address}`,
      `--secure-port=${this.apiServerPort}`,
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      `--cert-dir=${join(this.dir, "apiserver-certs")}`,
      `--tls-cert-file=${join(pki, "serving.crt")}`,
      `--tls-private-key-file=${join(pki, "serving.key")}`,
      `--client-ca-file=${join(pki, "ca.crt")}`,
      `--authorization-mode=${(this.#options.authorizationModes ?? ["RBAC"]).join(",")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(pki, "sa.pub")}`,
      `--service-account-signing-key-file=${join(pki, "sa.key")}`,
      `--service-cluster-ip-range=${this.#options.serviceClusterIpRange ?? SERVICE_RANGE}`,
      "--allow-privileged=true",
      "--profiling=false",
      ...(this.#options.extraApiServerFlags ?? []),
    ]);
    await this.#waitFor(this.#apiServer, this.#options.readyTimeoutMs ?? 60_000, async () => {
      const res = await this.#get("/readyz");
      return res.status === 200;
    });
    this.#version = JSON.parse((await this.#get("/version")).body) as KubernetesVersion;
  }

  /** Stops kube-apiserver only, leaving etcd (and so all objects) in place. */
  async stopApiServer(): Promise<void> {
    this.resumeApiServer();
    await this.#stopProcess(this.#apiServer);
    this.#apiServer = undefined;
  }

  /**
   * Pauses kube-apiserver (SIGSTOP to the process itself, not its supervisor): the kernel still
   * accepts connections, but nothing answers, as with a hung API server. resumeApiServer() lets
   * it run again; so do stopApiServer(), stop() and this process's exit, so nothing is left
   * stopped.
   */
  async pauseApiServer(): Promise<void> {
    const p = this.#apiServer;
    if (!p) throw new Error("kube-apiserver is not running");
    if (this.#pausedPid !== undefined) return;
    const pid = await this.#pidOf(p);
    process.kill(pid, "SIGSTOP");
    this.#pausedPid = pid;
    await waitUntilStopped(pid);
  }

  /** Lets a paused kube-apiserver run again (nothing when it is not paused). */
  resumeApiServer(): void {
    const pid = this.#pausedPid;
    if (pid === undefined) return;
    this.#pausedPid = undefined;
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
  }

  get apiServerPaused(): boolean {
    return this.#pausedPid !== undefined;
  }

  /** Stops everything and removes the temp dir (a `dir` of the caller's stays). Safe to call twice. */
  async stop(): Promise<void> {
    process.removeListener("exit", this.#onExit);
    this.resumeApiServer();
    await this.#stopProcess(this.#apiServer);
    await this.#stopProcess(this.#etcd);
    this.#apiServer = undefined;
    this.#etcd = undefined;
    if (!this.#kept) await rm(this.dir, { recursive: true, force: true });
  }

  /** The pid of the process a supervisor runs, from the file it writes once it spawned it. */
  async #pidOf(p: Supervised): Promise<number> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const pid = Number(await readFile(p.pidFile, "utf8").catch(() => ""));
      if (Number.isInteger(pid) && pid > 0) return pid;
      if (p.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no pid for ${p.name} in ${p.pidFile}`);
  }

  async #stopProcess(p: Supervised | undefined) {
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.stdin?.end();
    await p.exited;
  }

  /** Last resort on process exit: close the pipes so the supervisors stop their children. */
  #killNow() {
    this.resumeApiServer();
    for (const p of [this.#apiServer, this.#etcd]) {
      p?.child.stdin?.destroy();
      p?.child.kill("SIGTERM");
    }
  }

  async #waitFor(p: Supervised, timeoutMs: number, ready: () => Promise<boolean>) {
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    while (Date.now() < deadline) {
      if (p.child.exitCode !== null) {
        throw new ControlPlaneError(
          `${p.name} exited with code ${p.child.exitCode} before it was ready. Last lines of ${p.logPath}:\n${await this.#tail(p.logPath)}`,
        );
      }
      try {
        if (await ready()) return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new ControlPlaneError(
      `${p.name} was not ready after ${timeoutMs / 1000} s${lastError ? ` (last error: ${lastError})` : ""}. ` +
        `Last lines of ${p.logPath}:\n${await this.#tail(p.logPath)}`,
    );
  }

  async #tail(path: string, lines = 30): Promise<string> {
    const text = await readFile(path, "utf8").catch(() => "");
    return text.split("\n").slice(-lines).join("\n");
  }

  /** A GET against the API server as admin, without any Kubernetes client. */
  #get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.address,
          port: this.apiServerPort,
          path,
          ca: this.certs.ca.cert,
          cert: this.certs.admin.cert,
          key: this.certs.admin.key,
          timeout: 5000,
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on("error", reject);
      req.end();
    });
  }
}
