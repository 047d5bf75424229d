/**
 * What the container image holds, without Docker: the Dockerfile's final stage is laid out in a
 * temporary directory from its own COPY lines (production dependencies installed from the lock
 * file as the deps stage does, dist/ compiled as the build stage does, the rest copied), and the
 * operator is started from there, out of cluster, as the Deployment would run it: with the
 * ServiceAccount and RBAC of deploy/ and a ServiceAccount token. The example clients get keys:
 * examples/client.yaml's, bound to the keypool-user ClusterRole, from every pool of the namespace;
 * examples/client-one-pool.yaml's, granted by a Role with resourceNames, from openai-prod only; a
 * ServiceAccount without a grant from none. A runtime file or dependency missing from the image
 * fails here.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import {
  adminKubeConfig,
  createTestNamespace,
  eventually,
  kubectl,
  tokenKubeConfig,
} from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const api = poolApi(kc);

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

/** The COPY instructions of the Dockerfile's last stage. */
function finalStageCopies(dockerfile: string): Copy[] {
  const lines = dockerfile.split("\n").map((l) => l.trim());
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  return lines
    .slice(lastFrom + 1)
    .filter((l) => /^COPY\s/i.test(l))
    .map((l) => {
      const words = l.split(/\s+/).slice(1);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1) as string };
    });
}

let image: string;
let operator: OperatorProcess | undefined;

beforeAll(async () => {
  image = await mkdtemp(join(tmpdir(), "keypool-image-"));
  const copies = finalStageCopies(await readFile(join(ROOT, "Dockerfile"), "utf8"));
  for (const copy of copies) {
    const dest = join(image, copy.dest);
    if (copy.from === "deps") {
      // The deps stage: the lock file's production dependencies, no install scripts.
      await cp(join(ROOT, "package.json"), join(image, "package.json"));
      await cp(join(ROOT, "package-lock.json"), join(image, "package-lock.json"));
      await run(
        "npm",
        ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
        {
          cwd: image,
          maxBuffer: 16 * 1024 * 1024,
        },
      );
    } else if (copy.from === "build") {
      // The build stage: tsc with tsconfig.build.json into dist/.
      await run(
        process.execPath,
        [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", dest],
        {
          cwd: ROOT,
        },
      );
    } else if (copy.from === undefined) {
      for (const source of copy.sources) {
        await cp(
          join(ROOT, source),
          copy.sources.length > 1 || copy.dest.endsWith("/") ? join(dest, source) : dest,
          {
            recursive: true,
          },
        );
      }
    } else {
      throw new Error(`the Dockerfile copies from a stage this test does not know: ${copy.from}`);
    }
  }
  await rm(join(image, "package-lock.json"), { force: true });
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  if (image) await rm(image, { recursive: true, force: true });
});

describe("the image's final stage", () => {
  it("holds the compiled operator, its production dependencies and nothing from development", async () => {
    const top = (await readdir(image)).sort();
    expect(top).toEqual(expect.arrayContaining(["bin", "dist", "node_modules", "package.json"]));
    expect(top).not.toContain("src");
    expect(top).not.toContain("test");
    const modules = await readdir(join(image, "node_modules"));
    for (const runtime of ["@kubernetes", "express", "pino", "prom-client", "undici", "yaml", "zod", "bytes"])
      expect(modules).toContain(runtime);
    for (const dev of [
      "vitest",
      "typescript",
      "eslint",
      "prettier",
      "openai",
      "@anthropic-ai",
      "autocannon",
      "node",
    ])
      expect(modules).not.toContain(dev);
  });

  it("starts: `keypool --help` runs from dist/", async () => {
    const { stdout } = await run(process.execPath, [join(image, "bin/keypool.js"), "--help"], { cwd: image });
    expect(stdout).toContain("keypool");
    expect(stdout).toContain("operator");
  });

  it("runs out of cluster with deploy/'s RBAC and a ServiceAccount token, and serves the example clients", async () => {
    await installKeyPoolCrd();
    await kubectl(["create", "namespace", "keypool-system"]);
    const applied = await kubectl(["apply", "-f", join(ROOT, "deploy/base/rbac.yaml")]);
    expect(applied.code, applied.stderr).toBe(0);
    // Server-side, with the field manager cluster-roles.test.ts uses: the two may race.
    await eventually(async () => {
      const res = await kubectl([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=keypool-tests",
        "-f",
        join(ROOT, "deploy/base/user-roles.yaml"),
      ]);
      if (res.code !== 0) throw new Error(res.stderr);
      return true;
    });
    const operatorToken = (
      await core.createNamespacedServiceAccountToken({
        namespace: "keypool-system",
        name: "keypool-operator",
        body: { spec: { expirationSeconds: 3600 } },
      })
    ).status?.token as string;
    const kubeconfig = join(image, "operator.kubeconfig");
    await writeFile(kubeconfig, tokenKubeConfig(operatorToken).exportConfig());

    const ns = await createTestNamespace(kc, "image");
    for (const file of [
      "examples/openai.yaml",
      "examples/anthropic.yaml",
      "examples/client.yaml",
      "examples/client-one-pool.yaml",
    ]) {
      const res = await kubectl(["apply", "-n", ns, "-f", join(ROOT, file)]);
      expect(res.code, res.stderr).toBe(0);
    }
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "stranger" } } });

    operator = startOperator(
      [
        "--kubeconfig",
        kubeconfig,
        "--namespaces",
        ns,
        "--no-probes",
        "--leader-elect",
        "--leader-election-namespace",
        "keypool-system",
        "--leader-election-id",
        `image-${ns}`,
      ],
      { entry: join(image, "bin/keypool.js"), cwd: image },
    );
    const url = await operator.dispenserUrl();
    for (const pool of ["openai-prod", "anthropic-prod"])
      await api.waitForPool(ns, pool, (p) => condition(p, "Ready")?.status === "True");
    // The status page's own files are in the image (tsc copies none of them), uPlot too.
    const probesUrl = await operator.probesUrl();
    for (const path of ["/ui/", "/ui/vendor/uplot.min.js"]) {
      const page = await fetch(`${probesUrl}${path}`);
      expect(page.status, path).toBe(200);
    }

    const tokenOf = async (sa: string) =>
      (
        await core.createNamespacedServiceAccountToken({
          namespace: ns,
          name: sa,
          body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
        })
      ).status?.token as string;
    // The operator caches denials for 10 s: ask RBAC first, so a grant not yet seen by the
    // API server's informers cannot turn into a cached 403.
    for (const [sa, pool] of [
      ["example-client", "anthropic-prod"],
      ["openai-prod-client", "openai-prod"],
    ] as const) {
      await eventually(async () => {
        const canI = await kubectl([
          "auth",
          "can-i",
          "use",
          `keypools.keypool.dev/${pool}`,
          "-n",
          ns,
          "--as",
          `system:serviceaccount:${ns}:${sa}`,
        ]);
        return canI.stdout.trim() === "yes";
      });
    }
    const keyStatus = async (sa: string, pool: string) => {
      const res = await fetch(`${url}/v1/pools/${ns}/${pool}/key`, {
        headers: { authorization: `Bearer ${await tokenOf(sa)}` },
      });
      return {
        status: res.status,
        key: res.status === 200 ? ((await res.json()) as { key: string }).key : "",
      };
    };
    // keypool-user, bound with a RoleBinding: every pool of the namespace.
    for (const pool of ["openai-prod", "anthropic-prod"])
      expect(await keyStatus("example-client", pool), pool).toMatchObject({ status: 200, key: /^sk-/ });
    // The per-pool Role names openai-prod only.
    expect(await keyStatus("openai-prod-client", "openai-prod")).toMatchObject({ status: 200 });
    expect(await keyStatus("openai-prod-client", "anthropic-prod")).toMatchObject({ status: 403 });
    const stranger = await fetch(`${url}/v1/pools/${ns}/openai-prod/key`, {
      headers: { authorization: `Bearer ${await tokenOf("stranger")}` },
    });
    expect(stranger.status).toBe(403);
    // Everything the operator did was within its RBAC.
    expect(operator.lines.join("\n")).not.toMatch(/forbidden/i);
    const probes = await operator.probesUrl();
    expect((await fetch(`${probes}/readyz`)).status).toBe(200);
  });
});
