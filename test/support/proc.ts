/**
 * One thread's scheduling figures from /proc/<pid>/task/<tid>/ (Linux), for tests and benchmarks
 * that check what the operator's threads run at, how much CPU they used and where they may run.
 */
import { readFileSync } from "node:fs";

export interface ThreadStat {
  /** The nice value (field 19). */
  nice: number;
  /** User + system CPU time (fields 14 and 15, in 10 ms units), in ms. */
  cpuMs: number;
}

export function threadStat(pid: number, tid: number): ThreadStat {
  // Fields from 3 on follow the name in parentheses (field 2), which may hold spaces.
  const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return { nice: Number(fields[16]), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
}

/** The cores a thread may run on (Cpus_allowed_list in /proc/<pid>/task/<tid>/status, "0-1,3"). */
export function threadCores(pid: number, tid: number): number[] {
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? "";
  return list.split(",").flatMap((part) => {
    const [from, to = from] = part.split("-").map(Number) as [number, number?];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}
