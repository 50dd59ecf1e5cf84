// A bound counter series counts in a number of its own and reaches prom-client when the family is
// read: every read must show every increment once, whether it is a scrape or the dashboard's.

import { Metrics } from '../../src/metrics';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('bound counter series', () => {
  test('show 0 before they count, then every increment once across reads', async () => {
    const m = new Metrics();
    const c = m.counter('test_frames_total', 'Frames', ['direction']);
    const out = c.child({ direction: 'out' });
    const inn = c.child({ direction: 'in' });
    expect(sample(await m.render(), 'test_frames_total{direction="out"}')).toBe(0);

    out.inc();
    out.inc(4);
    inn.inc();
    let text = await m.render();
    expect(sample(text, 'test_frames_total{direction="out"}')).toBe(5);
    expect(sample(text, 'test_frames_total{direction="in"}')).toBe(1);

    // a second read without increments in between adds nothing
    text = await m.render();
    expect(sample(text, 'test_frames_total{direction="out"}')).toBe(5);

    out.inc();
    const values = (await c.family.get()).values;
    expect(values.find((v) => v.labels.direction === 'out')?.value).toBe(6);
    expect(sample(await m.render(), 'test_frames_total{direction="out"}')).toBe(6);
  });

  test('an unlabelled series, and increments through the family itself, add up with it', async () => {
    const m = new Metrics();
    const c = m.counter('test_plain_total', 'Plain');
    const bound = c.child();
    bound.inc(2);
    c.inc(undefined, 3);
    expect(sample(await m.render(), 'test_plain_total')).toBe(5);
  });
});
