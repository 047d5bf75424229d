/**
 * An interrupted run leaves nothing behind: `npm run cluster -- up` and its background process
 * are killed with SIGKILL while the cluster is coming up (every component and CoreDNS's pods
 * running: veths, mounts, iptables chains, cgroups), and `down` still removes all of it.
 * Only for this machine's cluster (npm run test:e2e); kind cleans up its own containers.
 */
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { down, leftovers } from "../support/cluster/cluster.ts";
import { formatLeftovers } from "../support/cluster/leftovers.ts";
import { clusterLayout } from "../support/cluster/layout.ts";
import { readState } from "../support/cluster/state.ts";
import { until } from "./support/kubectl.ts";

describe.skipIf(process.env.KEYPOOL_E2E_KUBECONFIG !== undefined)("an interrupted cluster", () => {
  it("killed with SIGKILL while CoreDNS is being deployed: down leaves no process, mount, interface or chain", async () => {
    const dir = join(tmpdir(), "keypool-e2e-interrupted");
    await down({ dir }); // a previous run's, if any
    const upProcess = spawn(process.execPath, ["test/support/cluster/main.ts", "up", "--dir", dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let output = "";
    upProcess.stderr.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    const state = await until(
      "the cluster deploying CoreDNS",
      async () => {
        if (upProcess.exitCode !== null) throw new Error(`up exited with ${upProcess.exitCode}:\n${output}`);
        const s = await readState(clusterLayout(dir).stateFile);
        return s?.step === "deploying CoreDNS" ? s : undefined;
      },
      900_000, // the first run builds the cluster's binaries
      200,
    );
    process.kill(state.daemonPid, "SIGKILL");
    upProcess.kill("SIGKILL");
    const before = await leftovers(dir);
    console.log(`[e2e] killed at "${state.step}": ${before.length} things of the cluster on the machine`);
    expect(before.length).toBeGreaterThan(0);

    const started = performance.now();
    const left = await down({ dir });
    console.log(`[e2e] down after SIGKILL took ${Math.round(performance.now() - started)} ms`);
    expect(left, formatLeftovers(left)).toEqual([]);
    expect(await leftovers(dir)).toEqual([]);
  });
});
