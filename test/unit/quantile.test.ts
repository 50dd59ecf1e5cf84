// histogramQuantile answers what Prometheus's histogram_quantile() answers on the same buckets,
// and the dashboard's sample ring keeps the newest samples, oldest first, within its bound.

import { SampleRing } from '../../src/api/dashboard';
import { histogramQuantile } from '../../src/core/quantile';

const INF = Number.POSITIVE_INFINITY;

test('a quantile is interpolated inside the bucket its rank falls in', () => {
  // 100 observations: 50 up to 1, 40 in (1, 2], 10 in (2, 5]
  const bounds = [1, 2, 5, INF];
  const cumulative = [50, 90, 100, 100];
  expect(histogramQuantile(0.5, bounds, cumulative)).toBe(1); // rank 50: the top of the first bucket
  expect(histogramQuantile(0.25, bounds, cumulative)).toBe(0.5); // rank 25: halfway into [0, 1]
  expect(histogramQuantile(0.7, bounds, cumulative)).toBeCloseTo(1.5, 10); // rank 70: halfway into (1, 2]
  expect(histogramQuantile(0.99, bounds, cumulative)).toBeCloseTo(4.7, 10); // rank 99: 9/10 of (2, 5]
});

test('a rank in the +Inf bucket answers the largest finite bound, and no observation answers nothing', () => {
  expect(histogramQuantile(0.99, [0.1, 1, INF], [10, 50, 100])).toBe(1);
  expect(histogramQuantile(0.99, [0.1, 1, INF], [0, 0, 0])).toBeUndefined();
  expect(() => histogramQuantile(0.99, [0.1, 1], [1, 2])).toThrow(/\+Inf/);
  expect(() => histogramQuantile(1.5, [1, INF], [1, 1])).toThrow(/between 0 and 1/);
});

test('the sample ring keeps the newest samples, oldest first, and answers those after a time', () => {
  const ring = new SampleRing(3);
  const sample = (t: number) => ({ t, reads: t, writes: 0, errors: 0, readP99Ms: null, writeP99Ms: null });
  for (let t = 1; t <= 5; t++) ring.push(sample(t));
  expect(ring.since(0).map((s) => s.t)).toEqual([3, 4, 5]);
  expect(ring.since(4).map((s) => s.t)).toEqual([5]);
  expect(ring.since(5)).toEqual([]);
});
