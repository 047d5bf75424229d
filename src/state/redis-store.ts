/**
 * The Redis/Valkey state store: one connection for commands (each operation is one Lua script,
 * see scripts.ts), one for the pub/sub channel replicas tell each other on. node-redis
 * (@redis/client) reconnects by itself with the backoff below; commands are never queued while
 * disconnected (they fail at once, so a dispense falls back or answers 503 without waiting), and
 * a command that gets no answer in `commandTimeoutMs` fails too (a paused or overloaded server).
 * That timeout is kept here, not by node-redis: its per-command deadlines made every minor GC of
 * the operator 4-5 times longer at 13,000 commands/s (bench/dispense p99), where one list of the
 * commands awaiting an answer and one watchdog timer cost nothing measurable. While the server
 * does not answer, the watchdog pings it, so the store is up again as soon as it answers.
 *
 * Times: windows and cooldown ends are decided on the server's clock (TIME). This process
 * converts its own epoch ms to the server's and back with an offset measured on every reply, so
 * replicas whose clocks disagree still agree on when a cooldown ends.
 */
import { createHash, randomBytes } from "node:crypto";
import { createClient, type RedisClientType } from "@redis/client";
import type { KeyState, Limits } from "../api/keypool.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { ADD_SPEND, END_LEASE, IN_FLIGHT, RESERVE, SET_STATE, STATES } from "./scripts.ts";
import type {
  LeaseEnd,
  Reservation,
  ReservationRequest,
  SharedKeyState,
  SharedSpend,
  SharedSpendTotals,
  SharedUsage,
  SpendRequest,
  StateStore,
  StoreMessage,
} from "./store.ts";

export interface RedisStoreOptions {
  /** redis://host:port/db or rediss:// (TLS). A password in the URL is used too, but prefer `password`. */
  url: string;
  password?: string | undefined;
  /** Prepended to every key and the channel, so installations can share a server. */
  prefix: string;
  logger: Logger;
  clock: Clock;
  /** This replica's tag: in lease ids it issues, and in what it publishes. */
  replicaTag?: string;
  commandTimeoutMs?: number;
  /** Longest wait between reconnection attempts. */
  maxReconnectDelayMs?: number;
}

/** Reconnection: 50 ms, doubling, up to maxReconnectDelayMs, with jitter so replicas spread out. */
export function reconnectDelay(retries: number, maxMs: number): number {
  const base = Math.min(maxMs, 50 * 2 ** Math.min(retries, 16));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

interface Script {
  source: string;
  sha: string;
}

const script = (source: string): Script => ({ source, sha: createHash("sha1").update(source).digest("hex") });

const SCRIPTS = {
  reserve: script(RESERVE),
  endLease: script(END_LEASE),
  setState: script(SET_STATE),
  states: script(STATES),
  inFlight: script(IN_FLIGHT),
  addSpend: script(ADD_SPEND),
};

type Reply = string | number | null | Reply[];

/** A command sent and not yet answered, oldest first in `#awaiting`. */
interface Awaiting {
  sentAtMs: number;
  reject: (err: Error) => void;
  settled: boolean;
}

/** A reply as text ("" for null). */
const text = (r: Reply | undefined): string => (r === null || r === undefined ? "" : String(r));
const num = (r: Reply | undefined): number => Number(text(r));

/** Triples (scope, kind, limit) for the windows a set of limits configures. */
function windowArgs(
  scope: "k" | "g",
  limits: Limits | undefined,
  kinds: "requests" | "tokens" | "all",
): string[] {
  if (!limits) return [];
  const out: string[] = [];
  if (kinds !== "tokens") {
    if (limits.requestsPerMinute) out.push(scope, "rpm", String(limits.requestsPerMinute));
    if (limits.requestsPerDay) out.push(scope, "rpd", String(limits.requestsPerDay));
  }
  if (kinds !== "requests" && limits.tokensPerMinute) out.push(scope, "tpm", String(limits.tokensPerMinute));
  return out;
}

export class RedisStateStore implements StateStore {
  readonly kind = "redis" as const;
  readonly replicaTag: string;
  readonly #o: RedisStoreOptions;
  readonly #log: Logger;
  readonly #client: RedisClientType;
  readonly #subscriber: RedisClientType;
  readonly #channel: string;
  readonly #availability = new Set<(up: boolean) => void>();
  readonly #messages = new Set<(message: StoreMessage) => void>();
  readonly #timeoutMs: number;
  #up = false;
  #closing = false;
  /** Commands awaiting an answer, in the order sent (one connection answers in order). */
  #awaiting: Awaiting[] = [];
  #watchdog: NodeJS.Timeout | undefined;
  /** The server stopped answering: it is pinged until it answers again. */
  #unanswered = false;
  #pinging = false;
  /** Server epoch ms minus this process's, from the reply with the shortest round trip lately. */
  #offsetMs = 0;
  #offsetRttMs = Number.POSITIVE_INFINITY;
  #offsetAtMs = 0;

  constructor(options: RedisStoreOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "state-store" });
    this.replicaTag = options.replicaTag ?? randomBytes(5).toString("hex").slice(0, 8);
    this.#timeoutMs = options.commandTimeoutMs ?? 1_000;
    this.#channel = `${options.prefix}events`;
    const maxDelay = options.maxReconnectDelayMs ?? 2_000;
    this.#client = createClient({
      url: options.url,
      ...(options.password ? { password: options.password } : {}),
      RESP: 2,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 2_000,
        reconnectStrategy: (retries: number) => reconnectDelay(retries, maxDelay),
      },
    }) as unknown as RedisClientType;
    this.#subscriber = this.#client.duplicate() as unknown as RedisClientType;
    for (const [name, client] of [
      ["commands", this.#client],
      ["subscriber", this.#subscriber],
    ] as const) {
      client.on("error", (err: Error) => {
        if (this.#closing) return;
        this.#log.debug({ connection: name, err: err.message }, "state store connection error");
        this.#setUp(false, err.message);
      });
      client.on("ready", () => this.#checkUp());
      client.on("end", () => this.#setUp(false, "connection closed"));
    }
  }

  get up(): boolean {
    return this.#up;
  }

  onAvailability(listener: (up: boolean) => void): void {
    this.#availability.add(listener);
  }

  onMessage(listener: (message: StoreMessage) => void): void {
    this.#messages.add(listener);
  }

  /**
   * Connects both connections; resolves when they are ready or after `waitMs` (the store may be
   * down at start: the client keeps trying in the background, and `up` says when it is there).
   */
  async connect(waitMs = 5_000): Promise<void> {
    this.#watchdog ??= setInterval(() => this.#watch(), Math.max(10, Math.min(250, this.#timeoutMs / 4)));
    this.#watchdog.unref();
    const ready = Promise.all([
      this.#client.connect(),
      this.#subscriber
        .connect()
        .then(() => this.#subscriber.subscribe(this.#channel, (message: string) => this.#onMessage(message))),
    ]).then(() => this.#checkUp());
    ready.catch((err: unknown) =>
      this.#log.warn({ err: (err as Error).message }, "state store connect failed"),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      ready.catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#watchdog);
    this.#fail(new Error("state store closed"));
    await Promise.allSettled([this.#client.close(), this.#subscriber.close()]);
    this.#up = false;
  }

  /** This process's epoch ms as the server's, and back. */
  toServer(ms: number): number {
    return ms ? Math.round(ms + this.#offsetMs) : 0;
  }

  toLocal(ms: number): number {
    return ms ? Math.round(ms - this.#offsetMs) : 0;
  }

  base(pool: string): string {
    return `${this.#o.prefix}{${pool}}`;
  }

  async reserve(r: ReservationRequest): Promise<Reservation> {
    const args = [
      this.base(r.pool),
      r.keyId,
      r.leaseId,
      String(Math.max(1, Math.round(r.leaseMs))),
      this.replicaTag,
      r.group?.name ?? "",
      ...windowArgs("k", r.keyLimits, "all"),
      ...(r.group ? windowArgs("g", r.group.limits, "all") : []),
    ];
    const reply = await this.#run(SCRIPTS.reserve, args);
    if (num(reply[0]) === 1) return { ok: true };
    if (text(reply[1]) === "state")
      return { ok: false, reason: "state", state: this.#decodeState(text(reply[2])) };
    const keyRoom = num(reply[2]);
    const groupRoom = num(reply[3]);
    const now = num(reply[4]);
    return keyRoom >= groupRoom
      ? {
          ok: false,
          reason: "window",
          scope: "key",
          retryAtMs: this.toLocal(keyRoom > now ? keyRoom : groupRoom),
        }
      : { ok: false, reason: "window", scope: "group", retryAtMs: this.toLocal(groupRoom) };
  }

  async endLease(end: LeaseEnd): Promise<{ keyId: string; origin: string | undefined } | undefined> {
    const tokens = Math.max(0, Math.round(end.tokens ?? 0));
    const args = [
      this.base(end.pool),
      end.leaseId ?? "",
      end.keyId ?? "",
      String(tokens),
      end.error ? "1" : "0",
      this.replicaTag,
      this.#channel,
      end.pool,
      end.group?.name ?? "",
      ...(tokens > 0 ? windowArgs("k", end.keyLimits, "tokens") : []),
      ...(tokens > 0 && end.group ? windowArgs("g", end.group.limits, "tokens") : []),
    ];
    const reply = await this.#run(SCRIPTS.endLease, args);
    if (num(reply[0]) !== 1) return undefined;
    const origin = text(reply[2]);
    return { keyId: text(reply[1]), origin: origin || undefined };
  }

  async setState(pool: string, keyId: string, state: SharedKeyState): Promise<SharedKeyState | undefined> {
    const json = JSON.stringify({
      state: state.state,
      sinceMs: this.toServer(state.sinceMs),
      untilMs: this.toServer(state.untilMs),
      consecutiveErrors: state.consecutiveErrors,
      lastErrorAtMs: this.toServer(state.lastErrorAtMs),
      ...(state.reason ? { reason: state.reason } : {}),
    });
    const reply = await this.#run(SCRIPTS.setState, [this.base(pool), keyId, json, this.#channel, pool]);
    const stored = text(reply[1]);
    return stored ? this.#decodeState(stored) : undefined;
  }

  async states(pool: string, keyIds: readonly string[]): Promise<Map<string, SharedKeyState>> {
    const found = new Map<string, SharedKeyState>();
    if (!keyIds.length) return found;
    const reply = await this.#run(SCRIPTS.states, [this.base(pool), ...keyIds]);
    keyIds.forEach((id, i) => {
      const raw = text(reply[i]);
      if (raw) found.set(id, this.#decodeState(raw));
    });
    return found;
  }

  async usage(pool: string, keyIds: readonly string[]): Promise<Map<string, SharedUsage>> {
    const found = new Map<string, SharedUsage>();
    if (!keyIds.length) return found;
    const fields = keyIds.flatMap((id) => [`${id}:r`, `${id}:e`, `${id}:t`]);
    const reply = (await this.#command(["HMGET", `${this.base(pool)}:u`, ...fields])) as Reply[];
    keyIds.forEach((id, i) => {
      const [r, e, t] = [reply[3 * i], reply[3 * i + 1], reply[3 * i + 2]];
      if (r === null && e === null && t === null) return;
      found.set(id, { requests: num(r) || 0, errors: num(e) || 0, lastUsedMs: this.toLocal(num(t) || 0) });
    });
    return found;
  }

  async inFlight(pool: string): Promise<Map<string, number>> {
    const reply = await this.#run(SCRIPTS.inFlight, [this.base(pool)]);
    const counts = new Map<string, number>();
    for (let i = 0; i + 2 < reply.length; i += 2) counts.set(text(reply[i]), num(reply[i + 1]));
    return counts;
  }

  async claimNotification(pool: string, id: string, ttlMs: number): Promise<boolean> {
    const name = `${this.base(pool)}:n:${createHash("sha256").update(id).digest("hex").slice(0, 32)}`;
    const reply = await this.#command([
      "SET",
      name,
      this.replicaTag,
      "NX",
      "PX",
      String(Math.max(1000, Math.round(ttlMs))),
    ]);
    return reply !== null;
  }

  async addSpend(request: SpendRequest): Promise<SharedSpend> {
    const now = this.#o.clock.now();
    // Kept a day past the window's end: a replica whose clock lags still finds the total.
    const ttl = (endMs: number) => String(Math.max(60_000, Math.ceil(endMs - now + 86_400_000)));
    const reply = await this.#run(SCRIPTS.addSpend, [
      this.base(request.pool),
      request.keyId,
      request.day.id,
      request.month.id,
      String(request.usd),
      ttl(request.day.endMs),
      ttl(request.month.endMs),
    ]);
    const [kd, km, pd, pm] = reply.map((r) => Number(text(r)) || 0);
    return { key: { dayUSD: kd ?? 0, monthUSD: km ?? 0 }, pool: { dayUSD: pd ?? 0, monthUSD: pm ?? 0 } };
  }

  async spend(
    pool: string,
    keyIds: readonly string[],
    windows: { day: string; month: string },
  ): Promise<{ keys: Map<string, SharedSpendTotals>; pool: SharedSpendTotals }> {
    const base = `${this.base(pool)}:$`;
    const names = [
      `${base}:p:d:${windows.day}`,
      `${base}:p:m:${windows.month}`,
      ...keyIds.flatMap((id) => [`${base}:k:${id}:d:${windows.day}`, `${base}:k:${id}:m:${windows.month}`]),
    ];
    const reply = (await this.#command(["MGET", ...names])) as Reply[];
    const value = (i: number) => Number(text(reply[i] ?? null)) || 0;
    const keys = new Map<string, SharedSpendTotals>();
    keyIds.forEach((id, i) => {
      const dayUSD = value(2 + 2 * i);
      const monthUSD = value(3 + 2 * i);
      if (dayUSD || monthUSD) keys.set(id, { dayUSD, monthUSD });
    });
    return { keys, pool: { dayUSD: value(0), monthUSD: value(1) } };
  }

  async publish(message: StoreMessage): Promise<void> {
    await this.#command(["PUBLISH", this.#channel, JSON.stringify(message)]);
  }

  // --- internals ---------------------------------------------------------------------------

  #decodeState(raw: string): SharedKeyState {
    const s = JSON.parse(raw) as Record<string, unknown>;
    return {
      state: s.state as KeyState,
      sinceMs: this.toLocal(Number(s.sinceMs) || 0),
      untilMs: this.toLocal(Number(s.untilMs) || 0),
      consecutiveErrors: Number(s.consecutiveErrors) || 0,
      lastErrorAtMs: this.toLocal(Number(s.lastErrorAtMs) || 0),
      ...(typeof s.reason === "string" ? { reason: s.reason } : {}),
    };
  }

  #onMessage(raw: string) {
    let parsed: { kind?: unknown; state?: unknown };
    try {
      parsed = JSON.parse(raw) as typeof parsed;
    } catch {
      return;
    }
    const message = (
      parsed.kind === "state" ? { ...parsed, state: this.#decodeState(JSON.stringify(parsed.state)) } : parsed
    ) as StoreMessage;
    for (const listener of this.#messages) listener(message);
  }

  /** Runs a script by its hash, loading it on NOSCRIPT (a restarted or new server). */
  async #run(s: Script, args: string[]): Promise<Reply[]> {
    const before = this.#o.clock.now();
    let reply: Reply[];
    try {
      reply = (await this.#command(["EVALSHA", s.sha, "0", ...args])) as Reply[];
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      reply = (await this.#command(["EVAL", s.source, "0", ...args])) as Reply[];
    }
    this.#sampleOffset(before, this.#o.clock.now(), num(reply.at(-1)));
    return reply;
  }

  async #command(args: string[]): Promise<Reply> {
    try {
      const reply = await this.#send(args);
      if (!this.#up) this.#checkUp();
      return reply;
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      // A script error (a bug) is not an outage; anything else is.
      if (!message.startsWith("NOSCRIPT") && !message.startsWith("ERR")) this.#setUp(false, message);
      throw err;
    }
  }

  /** Sends a command; the watchdog fails it if no answer comes within the command timeout. */
  #send(args: string[]): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const entry: Awaiting = { sentAtMs: this.#o.clock.now(), reject, settled: false };
      this.#awaiting.push(entry);
      const settle = () => {
        entry.settled = true;
        const awaiting = this.#awaiting;
        while (awaiting.length > 0 && awaiting[0]?.settled) awaiting.shift();
      };
      this.#client.sendCommand(args).then(
        (reply) => {
          settle();
          resolve(reply as unknown as Reply);
        },
        (err: unknown) => {
          settle();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /** Fails every command awaiting an answer (their answers, if they come, go nowhere). */
  #fail(err: Error) {
    const awaiting = this.#awaiting;
    this.#awaiting = [];
    for (const entry of awaiting) {
      if (entry.settled) continue;
      entry.settled = true;
      entry.reject(err);
    }
  }

  /** The watchdog: fails commands left unanswered too long; pings a server that stopped answering. */
  #watch() {
    const oldest = this.#awaiting[0];
    if (oldest && this.#o.clock.now() - oldest.sentAtMs >= this.#timeoutMs) {
      this.#unanswered = true;
      this.#fail(new Error(`no answer from the state store within ${this.#timeoutMs} ms`));
      this.#setUp(false, `no answer within ${this.#timeoutMs} ms`);
      return;
    }
    if (!this.#unanswered || this.#pinging || !this.#client.isReady) return;
    this.#pinging = true;
    this.#send(["PING"]).then(
      () => {
        this.#pinging = false;
        this.#unanswered = false;
        this.#checkUp();
      },
      () => {
        this.#pinging = false;
      },
    );
  }

  /** Keeps the offset of the reply with the shortest round trip (within the last 30 s). */
  #sampleOffset(before: number, after: number, serverNow: number) {
    if (!Number.isFinite(serverNow) || serverNow <= 0) return;
    const rtt = after - before;
    if (rtt <= this.#offsetRttMs || after - this.#offsetAtMs > 30_000) {
      this.#offsetMs = serverNow - (before + after) / 2;
      this.#offsetRttMs = rtt;
      this.#offsetAtMs = after;
    }
  }

  #checkUp() {
    this.#setUp(!this.#unanswered && this.#client.isReady && this.#subscriber.isReady);
  }

  #setUp(up: boolean, why?: string) {
    if (up === this.#up || this.#closing) return;
    this.#up = up;
    if (up) this.#log.info({ prefix: this.#o.prefix }, "state store connected");
    else this.#log.warn({ err: why }, "state store unavailable; replicas count alone until it is back");
    for (const listener of this.#availability) listener(up);
  }
}
