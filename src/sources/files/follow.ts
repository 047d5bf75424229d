/**
 * Following a directory: fs.watch for prompt changes, and a periodic rescan because fs.watch
 * misses events on some file systems (network mounts, some containers, Kubernetes volume
 * symlink swaps) and stops when the directory is replaced. Either one calls `onChange`; the
 * caller's rescan decides whether anything really changed.
 */
import { type FSWatcher, watch } from "node:fs";
import type { Logger } from "../../log.ts";
import { errorCode } from "./fs-errors.ts";

/** Editors write a file in several steps; one rescan after the burst is enough. */
const WATCH_SETTLE_MS = 50;

export interface FollowOptions {
  dir: string;
  rescanIntervalMs: number;
  logger: Logger;
  onChange: () => void;
}

export class DirectoryFollower {
  readonly #o: FollowOptions;
  #watcher: FSWatcher | undefined;
  #interval: NodeJS.Timeout | undefined;
  #settle: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(options: FollowOptions) {
    this.#o = options;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#watch();
    this.#interval = setInterval(() => {
      if (!this.#watcher) this.#watch(); // the directory may be back
      this.#o.onChange();
    }, this.#o.rescanIntervalMs);
    this.#interval.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#interval);
    clearTimeout(this.#settle);
    this.#interval = undefined;
    this.#settle = undefined;
    this.#unwatch();
  }

  #watch() {
    try {
      const watcher = watch(this.#o.dir, { persistent: false }, () => this.#changed());
      watcher.on("error", (err) => {
        this.#o.logger.debug(
          { dir: this.#o.dir, err: errorCode(err) },
          "directory watch failed; rescanning only",
        );
        this.#unwatch();
      });
      this.#watcher = watcher;
    } catch (err) {
      this.#o.logger.debug(
        { dir: this.#o.dir, err: errorCode(err) },
        "cannot watch directory; rescanning only",
      );
    }
  }

  #unwatch() {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #changed() {
    if (this.#stopped || this.#settle) return;
    this.#settle = setTimeout(() => {
      this.#settle = undefined;
      if (!this.#stopped) this.#o.onChange();
    }, WATCH_SETTLE_MS);
    this.#settle.unref();
  }
}
