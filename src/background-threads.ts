/**
 * V8's background threads yield to the thread that serves requests.
 *
 * Node.js runs V8's background work (concurrent GC marking and sweeping, optimizing compiles) on
 * a pool of worker threads named "V8Worker", four by default. When they share a core with the
 * main thread (a pod given one core, a busy node, or the benchmarks' one core per server), Linux
 * shares it between all five threads alike: measured with `perf sched` under bench/proxy at 500
 * calls/s, the main thread waited 16-24 ms at a time while each of the four workers ran a 4 ms
 * slice of concurrent marking, about 600 ms per 10 s, and the proxy's p99 went from 4 ms to
 * 30-80 ms in every round that had a major GC.
 *
 * At nice 19 (weight 15 against the main thread's 1024) a worker still gets the core whenever the
 * main thread waits for I/O, which at moderate load is most of the time, so the GC's concurrent
 * work still gets done; it no longer takes the core in turn with a main thread that has requests
 * to answer. Raising nice needs no privilege, and Linux keeps a nice value per thread, so the
 * main thread and libuv's threads (file writes of the log) keep theirs.
 *
 * It does not make the workers vanish: Linux's EEVDF scheduler (6.6 on) still gives a nice-19
 * thread its small share in slices, and a main thread woken during one waits for its end. A
 * scheduler trace of bench/proxy at 500 calls/s on kernel 6.18 (core 0 to the operator alone)
 * counted 15-20 such waits of 1-4.4 ms a minute, out of 30,000 wake-ups; a core of its own for the
 * operator's pod (a CPU limit of 2, or none) is what removes them.
 *
 * The nice value is `--background-threads-nice` (src/config.ts; default BACKGROUND_NICE, 0 turns
 * this off); docs/adr/0005-background-threads-nice.md says why it is a flag and why 19.
 *
 * Linux only (per-thread nice and /proc/<pid>/task); elsewhere this does nothing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";
import type { Logger } from "./log.ts";

/**
 * The nice value given to V8's worker threads unless configured otherwise: the lowest priority
 * there is, the value measured above (the default of --background-threads-nice).
 */
export const BACKGROUND_NICE = 19;

/** The name Node.js gives V8's platform worker threads (as /proc/<pid>/task/<tid>/comm shows it). */
const V8_WORKER_NAME = "V8Worker";

export interface ThreadAccess {
  /** This process's threads (id and name); empty where the platform has no /proc/self/task. */
  threads(): Array<{ tid: number; name: string }>;
  /** Sets one thread's nice value; throws on failure. */
  setNice(tid: number, nice: number): void;
}

/** A process's threads (id and name, as /proc/<pid>/task/<tid>/comm shows it); empty without /proc. */
export function threadsOf(pid: number | "self" = "self"): Array<{ tid: number; name: string }> {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const threads: Array<{ tid: number; name: string }> = [];
  for (const tid of tids) {
    try {
      threads.push({ tid: Number(tid), name: readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return threads;
}

export const linuxThreads: ThreadAccess = {
  threads: () => threadsOf(),
  setNice: (tid, nice) => setPriority(tid, nice),
};

export interface LoweredThreads {
  /** Worker threads now at the nice value asked for. */
  lowered: number;
  /** The first failure, when a thread could not be changed. */
  error?: string;
}

/** Moves V8's worker threads to `nice`; the main thread and every other thread are left alone. */
export function lowerV8WorkerPriority(
  access: ThreadAccess = linuxThreads,
  platform: NodeJS.Platform = process.platform,
  nice: number = BACKGROUND_NICE,
): LoweredThreads {
  if (platform !== "linux") return { lowered: 0 };
  const result: LoweredThreads = { lowered: 0 };
  for (const { tid, name } of access.threads()) {
    if (name !== V8_WORKER_NAME) continue;
    try {
      access.setNice(tid, nice);
      result.lowered++;
    } catch (err) {
      result.error ??= `thread ${tid}: ${(err as Error).message}`;
    }
  }
  return result;
}

export interface YieldOptions {
  /** Nice value for V8's worker threads, 1-19; 0 leaves them alone. Default BACKGROUND_NICE. */
  nice?: number;
  /** Where threads are found and changed; tests pass a fake. */
  access?: ThreadAccess;
  platform?: NodeJS.Platform;
}

/** lowerV8WorkerPriority at start-up, with a log line saying what it did. */
export function yieldBackgroundThreads(logger: Logger, options: YieldOptions = {}): void {
  const { nice = BACKGROUND_NICE, access = linuxThreads, platform = process.platform } = options;
  if (nice === 0) {
    logger.debug("V8 worker threads left at the process's priority (--background-threads-nice 0)");
    return;
  }
  const result = lowerV8WorkerPriority(access, platform, nice);
  if (result.error) {
    logger.warn(
      { lowered: result.lowered, nice, err: result.error },
      "could not lower the priority of every V8 worker thread; GC work may delay requests on a busy core",
    );
  } else if (result.lowered > 0) {
    logger.debug({ threads: result.lowered, nice }, `V8 worker threads lowered to nice ${nice}`);
  }
}
