/**
 * A real Redis (`redis-server`, the Debian package) on loopback for the shared-state tests, the
 * way test/support/control-plane/ runs etcd and kube-apiserver: a free port, a fresh temp dir,
 * persistence off (`--save ""`, `--appendonly no`), the output in a log file whose last lines
 * go into every start-up error.
 *
 * The server runs under control-plane/supervise.ts, so it does not outlive the test run even when
 * the run is killed. For outage drills it can be stopped or killed and started again on the same
 * port (empty: nothing is persisted), or paused and resumed (SIGSTOP/SIGCONT: a hung Redis).
 *
 * `command` and `dump` talk RESP2 over a plain socket (no client library), so tests can look
 * at the store without going through the code under test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./control-plane/control-plane.ts";
import { removeStaleTempDirs } from "./control-plane/processes.ts";

const SUPERVISOR = fileURLToPath(new URL("./control-plane/supervise.ts", import.meta.url));
const BINARY = "redis-server";
const DIR_PREFIX = "keypool-redis-";
const READY_TIMEOUT_MS = 10_000;
/** How long `command` waits for an answer: a paused server gets an error, not a hung test. */
const COMMAND_TIMEOUT_MS = 5_000;

export const REDIS_NOT_INSTALLED =
  "redis-server is not on PATH: npm test installs it (pretest); or apt-get install redis-server";

export interface StartRedisOptions {
  /** Sets `--requirepass`; `command` and `dump` then send AUTH first. */
  password?: string;
  /** Default: a free loopback port. */
  port?: number;
}

/** One key of the store, as `dump()` renders it. */
export interface RedisKeyDump {
  key: string;
  /** string, hash, zset, set, list or stream. */
  type: string;
  /** PTTL: milliseconds left, or -1 when the key does not expire. */
  ttlMs: number;
  /**
   * The value as text: a string as it is; a hash as `field=value` lines (HGETALL order); a
   * sorted set as `member score` lines (ZRANGE 0 -1 WITHSCORES); a set's members sorted, one a
   * line; a list's items in order, one a line; a stream as `id field=value ...` lines.
   */
  value: string;
}

export interface RedisServer {
  /** redis://127.0.0.1:PORT/0 (without the password). */
  readonly url: string;
  readonly port: number;
  /** The redis-server process's pid (a new one after restart()). */
  readonly pid: number;
  /** redis-server's output (stdout and stderr). */
  readonly logPath: string;
  /** SIGTERM, and waits until it exited; removes the temp dir. Safe to call twice, or after kill(). */
  stop(): Promise<void>;
  /** SIGKILL (a crash), and waits until it exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port (stopping it first if it runs) and waits until it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: connections are accepted, nothing answers. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** One command on a new connection (AUTH first when there is a password); a Redis error rejects. */
  command(...args: string[]): Promise<unknown>;
  /** Every key (SCAN), its type, PTTL and value, sorted by key. */
  dump(): Promise<RedisKeyDump[]>;
}

/** An error reply from Redis (`-ERR ...`, `-NOAUTH ...`): `code` is its first word. */
export class RedisReplyError extends Error {
  override name = "RedisReplyError";
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.code = message.split(" ", 1)[0] ?? "";
  }
}

export class RedisServerError extends Error {
  override name = "RedisServerError";
  readonly code = "redis_server_start_failed";
}

/** Starts redis-server and waits until it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  await assertInstalled();
  await removeStaleTempDirs(DIR_PREFIX);
  // A free port can be taken between freePort() and redis-server's bind: try another one.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
    const server = new SupervisedRedis(port, dir, options.password);
    try {
      await server.start();
      return server;
    } catch (err) {
      const portTaken = /Address already in use/i.test((err as Error).message);
      await server.stop();
      if (!portTaken || options.port !== undefined || attempt >= 3) throw err;
    }
  }
}

/**
 * Sends one command on a new connection to 127.0.0.1:`port` and returns the reply: a string for
 * simple and bulk strings, a number for integers, null for a null reply, an array for arrays. An
 * error reply rejects with a RedisReplyError. With `password`, AUTH goes first.
 */
export async function redisCommand(
  target: { port: number; password?: string; timeoutMs?: number },
  ...args: string[]
): Promise<unknown> {
  const connection = await RespConnection.open(target.port, target.timeoutMs ?? COMMAND_TIMEOUT_MS);
  try {
    if (target.password !== undefined) await connection.call(["AUTH", target.password]);
    return await connection.call(args);
  } finally {
    connection.close();
  }
}

async function assertInstalled(): Promise<void> {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    try {
      await access(join(dir, BINARY), constants.X_OK);
      return;
    } catch {
      // not in this one
    }
  }
  throw new RedisServerError(REDIS_NOT_INSTALLED);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class SupervisedRedis implements RedisServer {
  readonly port: number;
  readonly url: string;
  readonly logPath: string;
  readonly #dir: string;
  readonly #password: string | undefined;
  readonly #pidFile: string;
  #supervisor: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #pid = 0;
  #paused = false;
  readonly #onExit = () => this.#killNow();

  constructor(port: number, dir: string, password: string | undefined) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.#dir = dir;
    this.#password = password;
    this.logPath = join(dir, "redis.log");
    this.#pidFile = join(dir, "redis.pid");
  }

  get pid(): number {
    return this.#pid;
  }

  get #running(): boolean {
    const s = this.#supervisor;
    return s !== undefined && s.exitCode === null && s.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.#running) throw new Error(`redis-server is already running on port ${this.port}`);
    await mkdir(this.#dir, { recursive: true });
    await writeFile(join(this.#dir, "owner.pid"), String(process.pid));
    await rm(this.#pidFile, { force: true });
    const args = [
      ...["--port", String(this.port), "--bind", "127.0.0.1"],
      ...["--save", "", "--appendonly", "no", "--protected-mode", "no"],
      ...["--dir", this.#dir, "--notify-keyspace-events", ""],
      ...(this.#password !== undefined ? ["--requirepass", this.#password] : []),
    ];
    const log = await open(this.logPath, "a");
    const child = spawn(process.execPath, [SUPERVISOR, BINARY, ...args], {
      stdio: ["pipe", log.fd, log.fd],
      cwd: this.#dir,
      env: { ...process.env, SUPERVISE_PID_FILE: this.#pidFile },
    });
    await log.close();
    this.#supervisor = child;
    this.#exited = once(child, "exit").then(() => undefined);
    process.once("exit", this.#onExit);
    await this.#waitUntilAnswering();
  }

  async stop(): Promise<void> {
    await this.#stopProcess();
    await rm(this.#dir, { recursive: true, force: true });
  }

  async kill(): Promise<void> {
    if (!this.#running) return;
    this.#paused = false;
    process.kill(this.#pid, "SIGKILL");
    await this.#exited;
    process.removeListener("exit", this.#onExit);
  }

  async restart(): Promise<void> {
    await this.#stopProcess();
    await this.start();
  }

  pause(): void {
    if (!this.#running) throw new Error("redis-server is not running");
    process.kill(this.#pid, "SIGSTOP");
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    try {
      process.kill(this.#pid, "SIGCONT");
    } catch {
      // already gone
    }
  }

  command(...args: string[]): Promise<unknown> {
    return redisCommand({ port: this.port, ...this.#auth() }, ...args);
  }

  async dump(): Promise<RedisKeyDump[]> {
    const connection = await RespConnection.open(this.port, COMMAND_TIMEOUT_MS);
    try {
      if (this.#password !== undefined) await connection.call(["AUTH", this.#password]);
      const keys = new Set<string>();
      let cursor = "0";
      do {
        const [next, batch] = (await connection.call(["SCAN", cursor, "COUNT", "1000"])) as [
          string,
          string[],
        ];
        cursor = next;
        for (const key of batch) keys.add(key);
      } while (cursor !== "0");
      const dumped: RedisKeyDump[] = [];
      for (const key of [...keys].sort()) {
        const type = (await connection.call(["TYPE", key])) as string;
        const ttlMs = (await connection.call(["PTTL", key])) as number;
        // Gone between SCAN and here (expired or deleted).
        if (type === "none" || ttlMs === -2) continue;
        dumped.push({ key, type, ttlMs, value: await renderValue(connection, key, type) });
      }
      return dumped;
    } finally {
      connection.close();
    }
  }

  #auth(): { password?: string } {
    return this.#password !== undefined ? { password: this.#password } : {};
  }

  /** SIGTERM through the supervisor (which sends SIGCONT too, for a paused server). */
  async #stopProcess(): Promise<void> {
    this.#paused = false;
    if (this.#running) {
      this.#supervisor?.stdin?.end();
      await this.#exited;
    }
    process.removeListener("exit", this.#onExit);
  }

  /** Last resort on process exit: close the pipe, so the supervisor stops redis-server. */
  #killNow(): void {
    this.resume();
    this.#supervisor?.stdin?.destroy();
    this.#supervisor?.kill("SIGTERM");
  }

  async #waitUntilAnswering(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = "";
    while (Date.now() < deadline) {
      if (!this.#running) {
        await this.#exited;
        throw new RedisServerError(
          `redis-server exited with code ${this.#supervisor?.exitCode} before it answered on port ` +
            `${this.port}. Last lines of ${this.logPath}:\n${await this.#tail()}`,
        );
      }
      try {
        // Answering is not enough: another server may hold the port (ours then exits).
        if (await answersPing(this.port)) {
          const pid = await this.#readPid();
          if ((await this.#servingPid()) === pid) {
            this.#pid = pid;
            return;
          }
        }
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(50);
    }
    await this.#stopProcess();
    throw new RedisServerError(
      `redis-server did not answer on port ${this.port} within ${READY_TIMEOUT_MS / 1000} s` +
        `${lastError ? ` (last error: ${lastError})` : ""}. Last lines of ${this.logPath}:\n${await this.#tail()}`,
    );
  }

  /** The process_id of whichever server answers on our port (INFO server). */
  async #servingPid(): Promise<number> {
    const info = String(await this.command("INFO", "server"));
    return Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  }

  /** The pid supervise.ts wrote once it spawned redis-server. */
  async #readPid(): Promise<number> {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const pid = Number(await readFile(this.#pidFile, "utf8").catch(() => ""));
      if (Number.isInteger(pid) && pid > 0) return pid;
      await sleep(20);
    }
    throw new RedisServerError(`no pid for redis-server in ${this.#pidFile}`);
  }

  async #tail(lines = 30): Promise<string> {
    const text = await readFile(this.logPath, "utf8").catch(() => "");
    return text.split("\n").slice(-lines).join("\n");
  }
}

/** PING on a raw socket: +PONG, or -NOAUTH from a server with a password, means it serves. */
async function answersPing(port: number): Promise<boolean> {
  const connection = await RespConnection.open(port, 1_000);
  try {
    return (await connection.call(["PING"])) === "PONG";
  } catch (err) {
    if (err instanceof RedisReplyError && err.code === "NOAUTH") return true;
    throw err;
  } finally {
    connection.close();
  }
}

async function renderValue(connection: RespConnection, key: string, type: string): Promise<string> {
  const lines = async (args: string[]) => (await connection.call(args)) as string[];
  const pairs = (items: string[], join: (a: string, b: string) => string) =>
    Array.from({ length: items.length / 2 }, (_, i) => join(items[2 * i] ?? "", items[2 * i + 1] ?? ""));
  switch (type) {
    case "string":
      return ((await connection.call(["GET", key])) as string | null) ?? "";
    case "hash":
      return pairs(await lines(["HGETALL", key]), (f, v) => `${f}=${v}`).join("\n");
    case "zset":
      return pairs(await lines(["ZRANGE", key, "0", "-1", "WITHSCORES"]), (m, s) => `${m} ${s}`).join("\n");
    case "set":
      return (await lines(["SMEMBERS", key])).sort().join("\n");
    case "list":
      return (await lines(["LRANGE", key, "0", "-1"])).join("\n");
    case "stream": {
      const entries = (await connection.call(["XRANGE", key, "-", "+"])) as Array<[string, string[]]>;
      return entries
        .map(([id, fields]) => [id, ...pairs(fields, (f, v) => `${f}=${v}`)].join(" "))
        .join("\n");
    }
    default:
      return "";
  }
}

/** RESP2: a command is an array of bulk strings. */
function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(""));
}

/** Thrown by parseReply when the buffer does not hold a whole reply yet. */
const INCOMPLETE = Symbol("incomplete");

/**
 * One RESP2 reply from `buf` at `offset`: simple string (+), error (-, as a RedisReplyError
 * value), integer (:), bulk string ($, -1: null) and array (*, -1: null), nested.
 */
function parseReply(buf: Buffer, offset: number): { value: unknown; end: number } {
  const lineEnd = buf.indexOf("\r\n", offset);
  if (lineEnd < 0) throw INCOMPLETE;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: new RedisReplyError(line), end: next };
    case ":":
      return { value: Number(line), end: next };
    case "$": {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) throw INCOMPLETE;
      return { value: buf.toString("utf8", next, next + length), end: next + length + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: unknown[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end);
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP2 reply (type byte ${JSON.stringify(type)}): ${JSON.stringify(line)}`);
  }
}

/** A raw connection: commands are answered in order; each call times out on its own. */
class RespConnection {
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  #buffer = Buffer.alloc(0);
  #failure: Error | undefined;

  private constructor(socket: Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => this.#fail(new Error("redis connection closed")));
  }

  static async open(port: number, timeoutMs: number): Promise<RespConnection> {
    const socket = connect({ host: "127.0.0.1", port });
    const timer = setTimeout(
      () => socket.destroy(new Error(`connect to 127.0.0.1:${port} timed out`)),
      timeoutMs,
    );
    try {
      await once(socket, "connect");
    } finally {
      clearTimeout(timer);
    }
    return new RespConnection(socket, timeoutMs);
  }

  call(args: readonly string[]): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new Error(`${args[0] ?? "command"}: no answer within ${this.#timeoutMs} ms`);
        this.#fail(err);
        this.#socket.destroy();
      }, this.#timeoutMs);
      this.#waiting.push({
        resolve: (v) => {
          clearTimeout(timer);
          if (v instanceof RedisReplyError) reject(v);
          else resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      let reply: { value: unknown; end: number };
      try {
        reply = parseReply(this.#buffer, 0);
      } catch (err) {
        if (err === INCOMPLETE) return;
        this.#fail(err as Error);
        this.#socket.destroy();
        return;
      }
      this.#buffer = this.#buffer.subarray(reply.end);
      this.#waiting.shift()?.resolve(reply.value);
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(this.#failure);
  }
}
