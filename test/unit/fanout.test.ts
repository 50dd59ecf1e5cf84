import { LatencyWindow } from '../../src/core/latency';
import { TransportError } from '../../src/net/transport';
import { gather } from '../../src/node/fanout';
import { flushMicrotasks, ManualClock } from '../helpers/manual-clock';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('gather (coordinator fan-out)', () => {
  test('answers once W replies arrived, without waiting for the slow replica', async () => {
    const clock = new ManualClock();
    const calls = { a: deferred<string>(), b: deferred<string>(), c: deferred<string>() };
    let result: Awaited<ReturnType<typeof gather<string>>> | undefined;
    void gather(['a', 'b', 'c'], 2, (r) => calls[r as 'a'].promise, clock, 1000).then((g) => {
      result = g;
    });
    calls.a.resolve('A');
    await flushMicrotasks();
    expect(result).toBeUndefined();
    calls.c.resolve('C');
    await flushMicrotasks();
    expect(result?.outcome).toBe('ok');
    expect(result?.replies.map((r) => r.replica)).toEqual(['a', 'c']);
    expect(result?.failures).toEqual([]);
    // the slow one still lands in `settled`
    calls.b.resolve('B');
    const settled = await result?.settled;
    expect(settled?.replies.map((r) => r.replica)).toEqual(['a', 'c', 'b']);
  });

  test('fails as soon as too few replicas are left, naming why each failed', async () => {
    const clock = new ManualClock();
    const g = gather(
      ['a', 'b', 'c'],
      2,
      (r) => (r === 'c' ? new Promise<string>(() => {}) : Promise.reject(new TransportError('refused', `${r}: ECONNREFUSED`))),
      clock,
      1000,
    );
    const result = await g;
    expect(result.outcome).toBe('failed');
    expect(result.failures).toEqual([
      { replica: 'a', kind: 'refused', reason: 'refused: a: ECONNREFUSED' },
      { replica: 'b', kind: 'refused', reason: 'refused: b: ECONNREFUSED' },
    ]);
    expect(clock.pending()).toBe(1); // the deadline still bounds c
    await clock.advance(1000);
    expect((await result.settled).failures.map((f) => f.replica)).toEqual(['a', 'b', 'c']);
  });

  test('at the deadline, replicas that have not answered are reported as timeouts', async () => {
    const clock = new ManualClock();
    let result: Awaited<ReturnType<typeof gather<string>>> | undefined;
    void gather(['a', 'b', 'c'], 3, (r) => (r === 'a' ? Promise.resolve('A') : new Promise<string>(() => {})), clock, 1000).then((g) => {
      result = g;
    });
    await clock.advance(999);
    expect(result).toBeUndefined();
    await clock.advance(1);
    expect(result?.outcome).toBe('failed');
    expect(result?.failures).toEqual([
      { replica: 'b', kind: 'timeout', reason: 'timeout: no reply within 1000 ms' },
      { replica: 'c', kind: 'timeout', reason: 'timeout: no reply within 1000 ms' },
    ]);
  });

  test('a late reply after the deadline is ignored', async () => {
    const clock = new ManualClock();
    const late = deferred<string>();
    const g = gather(['a'], 1, () => late.promise, clock, 10);
    await clock.advance(10);
    late.resolve('too late');
    const result = await g;
    expect(result.outcome).toBe('failed');
    expect((await result.settled).replies).toEqual([]);
  });

  test('with nothing to ask and nothing needed it succeeds at once, without waiting for the deadline', async () => {
    const clock = new ManualClock();
    const result = await gather([], 0, () => Promise.resolve('x'), clock, 1000);
    expect(result.outcome).toBe('ok');
    expect(clock.pending()).toBe(0);
  });

  test('with fewer replicas than required it fails at once and sends nothing', async () => {
    const clock = new ManualClock();
    let sent = 0;
    const result = await gather(
      ['a', 'b'],
      3,
      () => {
        sent++;
        return Promise.resolve('x');
      },
      clock,
      1000,
    );
    expect(result.outcome).toBe('failed');
    expect(sent).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  test('asked for R first, it asks only R; a reserve replica takes the place of one that fails', async () => {
    const clock = new ManualClock();
    const asked: string[] = [];
    const calls = { a: deferred<string>(), b: deferred<string>(), c: deferred<string>() };
    let result: Awaited<ReturnType<typeof gather<string>>> | undefined;
    void gather(
      ['a', 'b', 'c'],
      2,
      (r) => {
        asked.push(r);
        return calls[r as 'a'].promise;
      },
      clock,
      1000,
      undefined,
      { initial: 2 },
    ).then((g) => {
      result = g;
    });
    await flushMicrotasks();
    expect(asked).toEqual(['a', 'b']);
    calls.b.reject(new TransportError('refused', 'b: ECONNREFUSED'));
    await flushMicrotasks();
    expect(asked).toEqual(['a', 'b', 'c']);
    calls.a.resolve('A');
    calls.c.resolve('C');
    await flushMicrotasks();
    expect(result?.outcome).toBe('ok');
    expect(result?.replies.map((r) => r.replica)).toEqual(['a', 'c']);
    expect(result?.failures).toEqual([{ replica: 'b', kind: 'refused', reason: 'refused: b: ECONNREFUSED' }]);
  });

  test('a replica slower than the speculation delay gets a stand-in, asked once; the first R replies win', async () => {
    const clock = new ManualClock();
    const asked: string[] = [];
    const calls = { a: deferred<string>(), b: deferred<string>(), c: deferred<string>() };
    let result: Awaited<ReturnType<typeof gather<string>>> | undefined;
    void gather(
      ['a', 'b', 'c'],
      2,
      (r) => {
        asked.push(r);
        return calls[r as 'a'].promise;
      },
      clock,
      1000,
      undefined,
      { initial: 2, speculateAfterMs: 5 },
    ).then((g) => {
      result = g;
    });
    calls.a.resolve('A');
    await clock.advance(4);
    expect(asked).toEqual(['a', 'b']);
    await clock.advance(1);
    expect(asked).toEqual(['a', 'b', 'c']);
    calls.c.resolve('C');
    await flushMicrotasks();
    expect(result?.outcome).toBe('ok');
    expect(result?.replies.map((r) => r.replica)).toEqual(['a', 'c']);
    // the slow one is not given up on: its reply still lands in settled (for read repair)
    calls.b.resolve('B');
    expect((await result?.settled)?.replies.map((r) => r.replica)).toEqual(['a', 'c', 'b']);
  });

  test('when every replica is asked and decided, nothing more is asked and no timer is left', async () => {
    const clock = new ManualClock();
    const result = await gather(['a', 'b', 'c'], 1, () => Promise.resolve('x'), clock, 1000, undefined, {
      initial: 1,
      speculateAfterMs: 3,
    });
    expect(result.replies.map((r) => r.replica)).toEqual(['a']);
    await result.settled;
    expect(clock.pending()).toBe(0);
  });
});

describe('LatencyWindow (when to speculate)', () => {
  test('knows no p99 until it has enough samples, then follows the window', () => {
    const w = new LatencyWindow(1000, 100, 50);
    for (let i = 0; i < 99; i++) w.add(1);
    expect(w.p99()).toBeUndefined();
    w.add(1);
    expect(w.p99()).toBe(1);
    // 2% slow samples: the p99 is slow
    for (let i = 0; i < 1000; i++) w.add(i % 50 === 0 ? 40 : 1);
    expect(w.p99()).toBe(40);
    // the window forgets: a thousand fast samples later the p99 is fast again
    for (let i = 0; i < 1000; i++) w.add(2);
    expect(w.p99()).toBe(2);
  });
});
