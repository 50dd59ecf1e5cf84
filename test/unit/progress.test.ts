// The progress the CLI shows for repair, decommission, removenode and a join: a bar with counts,
// rate and time left on a terminal, plain lines elsewhere.

import { bar, duration, ProgressPrinter, type ProgressView, RateWindow, renderProgress } from '../../src/cli/progress';

const view: ProgressView = {
  label: 'repair',
  done: 87,
  total: 192,
  unit: 'ranges',
  counts: ['12,345 keys compared', '10 repaired'],
  rate: { perSecond: 2345.4, of: 'keys' },
  leftMs: 42_400,
};

describe('progress', () => {
  test('a terminal gets a bar with the share done, the counts, the rate and the time left', () => {
    expect(renderProgress(view, true)).toBe(
      'repair [███████████░░░░░░░░░░░░░]  45%  ranges 87/192  12,345 keys compared  10 repaired  2,345 keys/s  about 42 s left',
    );
  });

  test('anything else gets the same facts as a plain line', () => {
    expect(renderProgress(view, false)).toBe(
      'repair: 45%, ranges 87/192, 12,345 keys compared, 10 repaired, 2,345 keys/s, about 42 s left',
    );
    const done = renderProgress({ ...view, done: 192, finished: true }, false);
    expect(done).toBe('repair: 100%, ranges 192/192, 12,345 keys compared, 10 repaired, 2,345 keys/s');
  });

  test('the bar is full only at the end, and shows a start as soon as there is one', () => {
    expect([0, 0.001, 0.5, 0.999, 1].map((f) => bar(f, 10))).toEqual([
      '[░░░░░░░░░░]',
      '[█░░░░░░░░░]',
      '[█████░░░░░]',
      '[█████████░]',
      '[██████████]',
    ]);
  });

  test('times left read as a person would say them', () => {
    expect([400, 42_000, 185_000, 7_440_000].map(duration)).toEqual(['0 s', '42 s', '3 min 05 s', '2 h 04 min']);
  });

  test('rate and time left come from the recent samples, so a pass that slows down is estimated as it runs now', () => {
    const w = new RateWindow(10_000);
    expect(w.perSecond()).toBeUndefined();
    w.add({ atMs: 0, fraction: 0, count: 0 });
    expect(w.leftMs()).toBeUndefined(); // one sample: no rate yet
    w.add({ atMs: 10_000, fraction: 0.5, count: 50_000 }); // 5,000/s, half done in 10 s
    expect({ rate: w.perSecond(), left: w.leftMs() }).toEqual({ rate: 5000, left: 10_000 });
    // it slows down to a tenth: the estimate follows once the fast part has left the window
    for (let t = 11_000; t <= 30_000; t += 1000)
      w.add({ atMs: t, fraction: 0.5 + (t - 10_000) / 200_000, count: 50_000 + (t - 10_000) / 2 });
    expect({ rate: w.perSecond(), left: Math.round(w.leftMs() as number) }).toEqual({ rate: 500, left: 80_000 });
    // nothing moves: no time left to promise
    const stuck = new RateWindow();
    stuck.add({ atMs: 0, fraction: 0.3, count: 10 });
    stuck.add({ atMs: 5000, fraction: 0.3, count: 10 });
    expect({ rate: stuck.perSecond(), left: stuck.leftMs() }).toEqual({ rate: 0, left: undefined });
  });

  test('on a terminal the bar is redrawn in place; elsewhere a line is printed only when something changed', () => {
    const written: string[] = [];
    const tty = new ProgressPrinter({ isTTY: true, write: (s: string) => written.push(s) });
    tty.update(view, 0, 'a');
    tty.update({ ...view, done: 90 }, 500, 'b');
    tty.finish({ ...view, done: 192, finished: true });
    const CLEAR_LINE = '\r\x1b[2K';
    expect(written.map((w) => (w.startsWith(CLEAR_LINE) ? / +(\d+)% /.exec(w)?.[1] : w))).toEqual(['45', '46', '100']);
    expect(written.at(-1)?.endsWith('\n')).toBe(true);

    const lines: string[] = [];
    const plain = new ProgressPrinter({ isTTY: false, write: (s: string) => lines.push(s) }, 2000);
    plain.update(view, 0, 'a'); // printed
    plain.update(view, 500, 'a'); // nothing new
    plain.update({ ...view, done: 88 }, 1000, 'b'); // new, but within 2 s of the last line
    plain.update({ ...view, done: 89 }, 2500, 'c'); // new: printed
    plain.update({ ...view, done: 89 }, 9000, 'c'); // unchanged for 6.5 s: not yet
    plain.update({ ...view, done: 89 }, 12_600, 'c'); // unchanged for 10 s: printed, still alive
    plain.finish({ ...view, done: 192, finished: true });
    expect(lines.map((l) => /ranges (\d+)/.exec(l)?.[1])).toEqual(['87', '89', '89', '192']);
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });
});
