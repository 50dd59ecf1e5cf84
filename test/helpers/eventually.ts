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

export { mapLimit } from '../../scripts/lib/map-limit';
