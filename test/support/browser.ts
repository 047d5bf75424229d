/**
 * A real headless browser for tests: Debian's chromium (scripts/test-tools.ts installs it)
 * driven by playwright-core, which downloads no browser of its own.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** The chromium binary: $CHROMIUM_PATH, else `chromium` on PATH. */
export function chromiumPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env.CHROMIUM_PATH && existsSync(env.CHROMIUM_PATH)) return env.CHROMIUM_PATH;
  const found = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).stdout.trim();
  if (!found) {
    throw new Error(
      "chromium is not on PATH: run `node scripts/test-tools.ts` (or apt-get install chromium), or set CHROMIUM_PATH",
    );
  }
  return found;
}

/** Headless chromium; without its sandbox when running as root (which chromium refuses otherwise). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
}
