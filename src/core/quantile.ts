// A quantile of a histogram from its cumulative bucket counts, estimated the way Prometheus's
// histogram_quantile() does (promql/quantile.go): find the bucket the rank falls in and
// interpolate linearly inside it, as if its observations were spread evenly between its bounds.
// So the dashboard's p99 is the figure a Grafana panel on the same buckets would show. Pure.

import assert from './assert';

/**
 * The `q`-quantile (0..1) of the observations counted in `cumulative`, where `cumulative[i]` is
 * how many were <= `bounds[i]` (bounds ascending, the last +Infinity). Undefined when nothing was
 * observed. A rank in the +Inf bucket answers the largest finite bound, as Prometheus does.
 */
export function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[]): number | undefined {
  assert(q >= 0 && q <= 1, `a quantile is between 0 and 1, got ${q}`);
  assert(bounds.length === cumulative.length && bounds.length > 0, 'one cumulative count per bucket bound');
  assert(bounds[bounds.length - 1] === Number.POSITIVE_INFINITY, 'the last bucket is +Inf');
  const total = cumulative[cumulative.length - 1] as number;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let i = 0;
  while (i < cumulative.length - 1 && (cumulative[i] as number) < rank) i++;
  if (i === bounds.length - 1) return bounds.length >= 2 ? (bounds[bounds.length - 2] as number) : undefined;
  const upper = bounds[i] as number;
  const lower = i === 0 ? Math.min(0, upper) : (bounds[i - 1] as number);
  const below = i === 0 ? 0 : (cumulative[i - 1] as number);
  const inBucket = (cumulative[i] as number) - below;
  if (inBucket <= 0) return upper;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}
