import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  BACKGROUND_NICE,
  type ThreadAccess,
  linuxThreads,
  lowerV8WorkerPriority,
  yieldBackgroundThreads,
} from "../../src/background-threads.ts";
import { ConfigError, parseOperatorConfig, parseServeConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";

/** A thread table in memory: which nice value each thread got, and which ones refuse. */
function fakeThreads(threads: Array<{ tid: number; name: string }>, refuse: number[] = []) {
  const nice = new Map<number, number>();
  const access: ThreadAccess = {
    threads: () => threads,
    setNice(tid, value) {
      if (refuse.includes(tid)) throw new Error("EPERM");
      nice.set(tid, value);
    },
  };
  return { access, nice };
}

const NODE_THREADS = [
  { tid: 100, name: "node" },
  { tid: 101, name: "DelayedTaskSche" },
  { tid: 102, name: "V8Worker" },
  { tid: 103, name: "V8Worker" },
  { tid: 104, name: "V8Worker" },
  { tid: 105, name: "V8Worker" },
  { tid: 106, name: "libuv-worker" },
];

describe("lowerV8WorkerPriority", () => {
  it("lowers every V8 worker thread to nice 19 and leaves the main thread and libuv's threads alone", () => {
    const { access, nice } = fakeThreads(NODE_THREADS);
    expect(lowerV8WorkerPriority(access, "linux")).toEqual({ lowered: 4 });
    expect([...nice]).toEqual([
      [102, BACKGROUND_NICE],
      [103, BACKGROUND_NICE],
      [104, BACKGROUND_NICE],
      [105, BACKGROUND_NICE],
    ]);
    expect(BACKGROUND_NICE).toBe(19);
  });

  it("does nothing on a platform without per-thread nice values", () => {
    const { access, nice } = fakeThreads(NODE_THREADS);
    expect(lowerV8WorkerPriority(access, "darwin")).toEqual({ lowered: 0 });
    expect(nice.size).toBe(0);
  });

  it("keeps going past a thread it cannot change, and says which one failed first", () => {
    const { access, nice } = fakeThreads(NODE_THREADS, [103]);
    const result = lowerV8WorkerPriority(access, "linux");
    expect(result.lowered).toBe(3);
    expect(result.error).toBe("thread 103: EPERM");
    expect(nice.has(104)).toBe(true);
  });

  it("finds nothing to lower when the process has no thread table (no /proc)", () => {
    const { access } = fakeThreads([]);
    expect(lowerV8WorkerPriority(access, "linux")).toEqual({ lowered: 0 });
  });
});

describe("yieldBackgroundThreads: --background-threads-nice", () => {
  const logger = createLogger({ level: "silent" });

  it.each([
    { name: "19 by default, as measured", nice: undefined, expected: [19, 19, 19, 19] },
    { name: "the value given", nice: 10, expected: [10, 10, 10, 10] },
    { name: "nothing at 0", nice: 0, expected: [] },
  ])("lowers V8's worker threads to $name", ({ nice, expected }) => {
    const { access, nice: set } = fakeThreads(NODE_THREADS);
    yieldBackgroundThreads(logger, { nice, access, platform: "linux" });
    expect([...set.values()]).toEqual(expected);
  });

  it.each([
    { command: "operator", parse: parseOperatorConfig },
    { command: "serve", parse: parseServeConfig },
  ])("is a flag of keypool $command: 0-19, default 19", ({ parse }) => {
    expect(parse([], {}).backgroundThreadsNice).toBe(BACKGROUND_NICE);
    expect(parse(["--background-threads-nice", "0"], {}).backgroundThreadsNice).toBe(0);
    expect(parse([], { KEYPOOL_BACKGROUND_THREADS_NICE: "5" }).backgroundThreadsNice).toBe(5);
    expect(() => parse(["--background-threads-nice", "20"], {})).toThrow(ConfigError);
    expect(() => parse(["--background-threads-nice", "-1"], {})).toThrow(/--background-threads-nice/);
  });
});

describe.runIf(process.platform === "linux")("linuxThreads", () => {
  it("lists this process's threads with the names /proc gives them", () => {
    const threads = linuxThreads.threads();
    const main = threads.find((t) => t.tid === process.pid);
    expect(main?.name).toBe(readFileSync("/proc/self/comm", "utf8").trim());
    expect(threads.length).toBeGreaterThan(1);
    for (const t of threads) expect(t.name.length).toBeGreaterThan(0);
  });
});
