/** Polling for tests and benchmarks (no vitest dependency, so bench/ can use it). */
/** Polls `fn` until it returns a truthy value or the time runs out (then throws the last error). */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
  stepMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw last instanceof Error ? last : new Error(`condition not met within ${timeoutMs} ms`);
}
