// Wait for a condition, never for a fixed time: retries `check` until it stops throwing or the
// deadline passes, then rethrows its last error (so the failure says what was still wrong).

export async function eventually<T>(check: () => T | Promise<T>, { timeoutMs = 10_000, intervalMs = 50 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw lastError;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight (tests load the cluster, not flood it). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}
