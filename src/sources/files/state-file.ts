/**
 * The standalone state file: each pool's engine snapshot (so a restart resumes cooldowns and
 * Invalid marks) and the keys added at run time through the API (the only key material in it,
 * hence mode 0600). Written atomically: a temporary file, then a rename over the old one.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, unlink, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import type { Logger } from "../../log.ts";
import type { Clock } from "../../pool/clock.ts";
import { EngineSnapshot } from "../../pool/snapshot.ts";
import { errorCode } from "./fs-errors.ts";

export const STATE_FILE_VERSION = 1;

export const StandaloneState = z.object({
  version: z.literal(STATE_FILE_VERSION),
  /** Engine snapshots by "namespace/name". */
  pools: z.record(z.string(), EngineSnapshot),
  /** Keys added through the API, by "namespace/name". */
  addedKeys: z.record(z.string(), z.array(z.string().min(1))),
});
export type StandaloneState = z.infer<typeof StandaloneState>;

export const emptyState = (): StandaloneState => ({ version: STATE_FILE_VERSION, pools: {}, addedKeys: {} });

export interface StateFileOptions {
  path: string;
  logger: Logger;
  clock: Clock;
}

export class StateFile {
  readonly #path: string;
  readonly #log: Logger;
  readonly #clock: Clock;

  constructor(options: StateFileOptions) {
    this.#path = options.path;
    this.#log = options.logger.child({ stateFile: options.path });
    this.#clock = options.clock;
  }

  get path(): string {
    return this.#path;
  }

  /**
   * The saved state; empty when there is none yet. A file that cannot be read or parsed is moved
   * aside to <file>.corrupt-<timestamp> (for a human to look at) and the state starts empty:
   * losing cooldowns is better than not starting.
   */
  async read(): Promise<StandaloneState> {
    let text: string;
    try {
      text = await readFile(this.#path, "utf8");
    } catch (err) {
      if (errorCode(err) === "ENOENT") return emptyState();
      await this.#setAside(`cannot be read (${errorCode(err)})`);
      return emptyState();
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // The parser's message quotes the text, which may hold keys: say only what is wrong.
      await this.#setAside("is not valid JSON");
      return emptyState();
    }
    const parsed = StandaloneState.safeParse(json);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const where = first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "invalid";
      await this.#setAside(`does not hold a version ${STATE_FILE_VERSION} state (${where})`);
      return emptyState();
    }
    return parsed.data;
  }

  /** Replaces the file with `state`, atomically, readable by its owner only. */
  async write(state: StandaloneState): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    const temp = `${this.#path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.#path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }

  async #setAside(why: string): Promise<void> {
    const stamp = new Date(this.#clock.now()).toISOString().replace(/[:.]/g, "-");
    const backup = `${this.#path}.corrupt-${stamp}`;
    try {
      await rename(this.#path, backup);
      this.#log.warn({ backup }, `state file ${why}; moved aside, starting without saved state`);
    } catch (err) {
      this.#log.warn(
        { backupError: errorCode(err) },
        `state file ${why}; could not move it aside, starting without saved state`,
      );
    }
  }
}
