// A small HTTP client for tests: what curl would show (status, JSON body), with a deadline.

export interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary JSON fields
  body: any;
  text: string;
  elapsedMs: number;
  headers: Headers;
}

export async function http(
  method: string,
  url: string,
  opts: { json?: unknown; body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] ??= 'application/json';
  }
  const start = performance.now();
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, elapsedMs: performance.now() - start, headers: res.headers };
}

export const put = (base: string, key: string, value: unknown, query = '') =>
  http('PUT', `${base}/kv/${encodeURIComponent(key)}${query}`, { json: { value } });
export const get = (base: string, key: string, query = '') => http('GET', `${base}/kv/${encodeURIComponent(key)}${query}`);
export const del = (base: string, key: string, query = '') => http('DELETE', `${base}/kv/${encodeURIComponent(key)}${query}`);
