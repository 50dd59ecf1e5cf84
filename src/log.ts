// Structured logs with pino, one JSON object per line on stdout. `scripts/cluster.ts` turns them
// into readable lines for the local cluster; in Kubernetes they go to the log pipeline as they are.

import pino from 'pino';
import type { Logger } from './core/log';

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger & pino.Logger {
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime });
}
