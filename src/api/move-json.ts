// A move's counts as the JSON replies show them, for both views of a move: /admin/move (times as
// ISO dates, with the elapsed time) and the dashboard's (times in ms, for the page to compute with).

import type { MoveProgress } from '../node/movement';

export function moveCounts(p: MoveProgress): Record<string, unknown> {
  return {
    ranges_total: p.rangesTotal,
    ranges_done: p.rangesDone,
    records_streamed: p.recordsStreamed,
    bytes_streamed: p.bytesStreamed,
    waiting_for: p.waitingFor ?? null,
    error: p.error ?? null,
  };
}
