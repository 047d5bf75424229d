/**
 * A Chrome DevTools Protocol session with a Node.js process started with --inspect, over Node's
 * global WebSocket: the benches read a process's memory, force a GC and take heap snapshots
 * through it, so the product needs no debug endpoint. A snapshot is streamed chunk by chunk into
 * the parser (bench/heap-snapshot.ts), never held as one string: a large heap's text is longer
 * than V8's longest string.
 */
import { createWriteStream } from "node:fs";
import { byConstructor, type ConstructorRow, HeapSnapshotParser, SnapshotIndex } from "./heap-snapshot.ts";

export class Inspector {
  readonly #ws: WebSocket;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #onChunk: ((chunk: string) => void) | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    // The process gone (killed: out of memory) answers nothing more: fail what waits for it.
    ws.addEventListener("close", () => {
      for (const { reject } of this.#pending.values()) reject(new Error("inspector connection closed"));
      this.#pending.clear();
    });
    ws.addEventListener("message", (event: MessageEvent) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        method?: string;
        params?: { chunk?: string };
        result?: unknown;
        error?: { message: string };
      };
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) pending?.reject(new Error(message.error.message));
        else pending?.resolve(message.result);
      } else if (message.method === "HeapProfiler.addHeapSnapshotChunk") {
        this.#onChunk?.(message.params?.chunk ?? "");
      }
    });
  }

  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`inspector at ${url}: no connection`)), {
        once: true,
      });
    });
    return new Inspector(ws);
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** The JSON value of `expression` in the process (awaited when it is a promise). */
  async evaluate<T>(expression: string): Promise<T> {
    const result = (await this.send("Runtime.evaluate", {
      expression: `JSON.stringify(${expression})`,
      returnByValue: true,
      awaitPromise: true,
    })) as { result: { value?: string }; exceptionDetails?: { text: string } };
    if (result.exceptionDetails) throw new Error(`evaluate: ${result.exceptionDetails.text}`);
    return JSON.parse(result.result.value ?? "null") as T;
  }

  /** process.memoryUsage() in the process. */
  memoryUsage(): Promise<NodeJS.MemoryUsage> {
    return this.evaluate<NodeJS.MemoryUsage>("process.memoryUsage()");
  }

  /** v8.getHeapSpaceStatistics() in the process. */
  heapSpaces(): Promise<Array<{ space_name: string; space_size: number; space_used_size: number }>> {
    return this.evaluate("process.getBuiltinModule('node:v8').getHeapSpaceStatistics()");
  }

  async collectGarbage(): Promise<void> {
    await this.send("HeapProfiler.collectGarbage");
  }

  /** A heap snapshot into `parser`, and into `file` too when given (to open in DevTools). */
  async heapSnapshot(parser: HeapSnapshotParser, file?: string): Promise<void> {
    const out = file ? createWriteStream(file) : undefined;
    this.#onChunk = (chunk) => {
      parser.push(chunk);
      out?.write(chunk);
    };
    try {
      await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    } finally {
      this.#onChunk = undefined;
      if (out) await new Promise((resolve) => out.end(resolve));
    }
  }

  /** A heap snapshot summarized: self size and count by constructor, largest first. */
  async heapSummary(top = 12): Promise<ConstructorRow[]> {
    const parser = new HeapSnapshotParser();
    await this.heapSnapshot(parser);
    return byConstructor(new SnapshotIndex(parser.end()), top).rows;
  }

  close(): void {
    this.#ws.close();
  }
}
