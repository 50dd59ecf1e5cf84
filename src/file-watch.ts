// Files a running node re-reads when they change: the tokens file and the TLS certificate, key
// and CA, which Kubernetes updates in place when their Secret changes (a mounted Secret is a
// directory whose files are swapped atomically by a symlink; inotify on the file misses that).
// So the files are polled: read every `intervalMs`, and `onChange` gets them all when any differs
// from the last read. A file that cannot be read is reported once per distinct problem, and the
// node keeps what it has: a Secret being swapped, or a mistake in it, never opens anything.

import { readFileSync, statSync } from 'node:fs';

/** How often the files are read: a changed Secret is in use within about this long. */
export const FILE_POLL_INTERVAL_MS = 1_000;

/** No file read here is larger than this (a token list, a certificate chain, a key). */
export const MAX_WATCHED_FILE_BYTES = 1 << 20;

/** Reads one file whole, bounded; the error names the setting it came from. */
export function readBounded(file: string, setting: string): Buffer {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new Error(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (size > MAX_WATCHED_FILE_BYTES) throw new Error(`${setting}: ${file} is ${size} bytes; at most ${MAX_WATCHED_FILE_BYTES}`);
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export interface WatchedFile {
  path: string;
  /** The flag that names it, for messages. */
  setting: string;
}

/**
 * Polls `files` (their contents as read at start are `initial`); calls `onChange` with every file's
 * new content when one changes. `onChange` may throw (the content is refused): `onError` gets the
 * reason and the same content is not tried again until it changes. Returns the stop function.
 */
export function watchFiles(
  files: readonly WatchedFile[],
  initial: readonly Buffer[],
  onChange: (contents: Buffer[]) => void,
  onError: (message: string) => void,
  intervalMs = FILE_POLL_INTERVAL_MS,
): () => void {
  let last = [...initial];
  let lastError = '';
  const timer = setInterval(() => {
    let contents: Buffer[];
    try {
      contents = files.map((f) => readBounded(f.path, f.setting));
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastError) onError(message);
      lastError = message;
      return;
    }
    if (contents.every((c, i) => c.equals(last[i] as Buffer))) return;
    last = contents;
    try {
      onChange(contents);
      lastError = '';
    } catch (err) {
      lastError = (err as Error).message;
      onError(lastError);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
