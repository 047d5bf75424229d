/**
 * npm run control-plane -- <command>
 *
 *   build                       build kube-apiserver, etcd and kubectl into the cache (once)
 *   up --kubeconfig <path>      start a control plane in the foreground; Ctrl-C stops it
 *      [--dir <path>]           keep it in <path>: `up` again with it brings the same cluster back
 *   where                       print where the binaries are (or would be built)
 */

import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { cacheDir, findBinaries, KUBERNETES_VERSION } from "../test/support/control-plane/binaries.ts";
import { buildBinaries, ensureBinaries } from "../test/support/control-plane/build.ts";
import { ControlPlane } from "../test/support/control-plane/control-plane.ts";

const USAGE = `usage: npm run control-plane -- <command>

commands:
  build                      build kube-apiserver, etcd and kubectl v${KUBERNETES_VERSION} from the official
                             Go modules into ${cacheDir()} (skipped when already there)
  up --kubeconfig <path>     start etcd + kube-apiserver on loopback; write an admin kubeconfig to <path>
     [--dir <path>]          once ready; stop cleanly on Ctrl-C / SIGTERM. With --dir, certificates,
                             ports and etcd's data are kept in that directory (default: a temp dir,
                             removed on stop): \`up\` again with the same --dir brings the same cluster
                             back, on the same port, with the same kubeconfig
  where                      print which binaries would be used

KUBEBUILDER_ASSETS, when set, names a folder holding kube-apiserver and etcd to use instead.`;

const log = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      kubeconfig: { type: "string" },
      dir: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  switch (command) {
    case "build": {
      const started = Date.now();
      const found = await findBinaries();
      if (found) {
        log(`binaries already present in ${found.dir} (${found.origin}); nothing to build`);
        return 0;
      }
      const built = await buildBinaries({ log });
      log(`ready: ${built.dir} (${Math.round((Date.now() - started) / 1000)} s)`);
      return 0;
    }
    case "where": {
      const found = await findBinaries();
      process.stdout.write(
        `${found ? `${found.dir} (${found.origin})` : `not built yet; would build into ${cacheDir()}`}\n`,
      );
      return 0;
    }
    case "up": {
      if (!values.kubeconfig) {
        log("up needs --kubeconfig <path>: where to write the admin kubeconfig");
        return 2;
      }
      const binaries = await ensureBinaries({ log });
      const started = Date.now();
      const plane = await ControlPlane.start({
        binaries,
        log,
        ...(values.dir ? { dir: resolve(values.dir) } : {}),
      });
      const kubeconfig = resolve(values.kubeconfig);
      await writeFile(kubeconfig, plane.kubeconfigYaml(), { mode: 0o600 });
      log(
        `kube-apiserver ${plane.version.gitVersion} ready at ${plane.server} in ${Date.now() - started} ms`,
      );
      log(`kubeconfig: ${kubeconfig}`);
      log(`kubectl:    ${plane.kubectl ?? "(none in KUBEBUILDER_ASSETS)"}`);
      log(`try:        ${plane.kubectl ?? "kubectl"} --kubeconfig ${kubeconfig} get namespaces`);
      if (values.dir) log(`kept in:    ${plane.dir} (up --dir ${plane.dir} again brings this cluster back)`);
      log("Ctrl-C stops it.");
      await new Promise<void>((done) => {
        const stop = (signal: string) => {
          log(`${signal}: stopping the control plane`);
          plane.stop().then(done, done);
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
      return 0;
    }
    default:
      log(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    log(`control-plane: ${err.message}`);
    process.exit(1);
  },
);
