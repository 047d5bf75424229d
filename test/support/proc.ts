/**
 * One thread's scheduling figures from /proc/<pid>/task/<tid>/stat (Linux), for tests and
 * benchmarks that check what the operator's threads run at and how much CPU they used.
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
