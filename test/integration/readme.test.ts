/**
 * A newcomer following README.md gets keys from `npm start` with the README's own commands:
 * this test starts `npm start` as written and runs the README's curl block with bash.
 */
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/control-plane/control-plane.ts";
import { eventually } from "../support/eventually.ts";

let port: number;
let server: ReturnType<typeof spawn>;
let output = "";

beforeAll(async () => {
  port = await freePort();
  const probesPort = await freePort();
  // `npm start` exactly; only the ports move (through the documented KEYPOOL_* variables) so the
  // test never collides with anything listening on 8769.
  server = spawn("npm", ["start"], {
    env: { ...process.env, KEYPOOL_PORT: String(port), KEYPOOL_PROBES_PORT: String(probesPort) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  server.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  server.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 60_000, 200);
});

afterAll(() => {
  if (server?.pid) process.kill(-server.pid, "SIGTERM");
});

async function readmeBlock(marker: string): Promise<string> {
  const readme = await readFile("README.md", "utf8");
  const at = readme.indexOf(`<!-- readme-test: ${marker} -->`);
  expect(at, `README.md has no block marked readme-test: ${marker}`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  return block?.[1] ?? "";
}

describe("README quick start without a cluster", () => {
  it("npm start prints where it serves", () => {
    expect(output).toContain("serving 6 pool(s) at http://127.0.0.1:");
  });

  it("the README's curl commands work as written", async () => {
    const commands = (await readmeBlock("standalone")).replaceAll("127.0.0.1:8769", `127.0.0.1:${port}`);
    // One answer per line (curl adds no newline; a terminal user sees them apart anyway).
    const script = `curl() { command curl "$@"; echo; }\n${commands}`;
    expect(commands).toContain("curl");
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile("bash", ["-euo", "pipefail", "-c", script], (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      );
    });
    const answers = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(answers).toHaveLength(5);
    const [key, report, pool, compatKey, status] = answers;
    expect(key).toMatchObject({ pool: { namespace: "default", name: "openai-prod" }, strategy: "Weighted" });
    expect(String(key?.key)).toMatch(/^sk-example-/);
    expect(report).toEqual({ keyId: "c7ccc4642ad7", state: "RateLimited" });
    expect(JSON.stringify(pool)).not.toContain("sk-example");
    expect(pool).toMatchObject({ pool: { name: "openai-prod" }, provider: "openai" });
    expect(compatKey).toMatchObject({ success: true, model: "anthropic-prod" });
    expect(status).toMatchObject({ status: "ok", models: { "openai-prod": { totalKeys: 5 } } });
  });
});
