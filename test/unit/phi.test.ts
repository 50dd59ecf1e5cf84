import { ArrivalWindow, livenessOf } from '../../src/core/phi';

const opts = { windowSize: 1000, initialIntervalMs: 2000, maxIntervalMs: 4000 };

describe('phi accrual failure detector', () => {
  test('phi grows with silence, as t / (mean * ln 10): with 1 s heartbeats, phi 8 after about 18.4 s', () => {
    const w = new ArrivalWindow(opts);
    let t = 0;
    for (let i = 0; i < 100; i++) {
      t += 1000;
      w.heartbeat(t);
    }
    expect(w.meanMs()).toBe(1000);
    expect(w.phi(t)).toBe(0);
    expect(w.phi(t + 1000)).toBeCloseTo(1 / Math.LN10, 6);
    expect(w.phi(t + 18_420)).toBeCloseTo(8, 2);
  });

  test('a member heard irregularly is judged by its own rhythm', () => {
    const fast = new ArrivalWindow(opts);
    const slow = new ArrivalWindow(opts);
    for (let i = 1; i <= 50; i++) {
      fast.heartbeat(i * 100);
      slow.heartbeat(i * 3000);
    }
    // the same 3 s of silence: alarming for the fast one, normal for the slow one
    expect(livenessOf(fast.phi(5000 + 3000), 8)).toBe('down');
    expect(livenessOf(slow.phi(150_000 + 3000), 8)).toBe('alive');
  });

  test('before any interval the initial mean applies; before any heartbeat phi is 0', () => {
    const w = new ArrivalWindow(opts);
    expect(w.phi(123_456)).toBe(0);
    w.heartbeat(0);
    expect(w.meanMs()).toBe(2000);
    expect(w.phi(2000)).toBeCloseTo(1 / Math.LN10, 6);
  });

  test('a long gap (a pause or restart) is not learned as normal', () => {
    const w = new ArrivalWindow(opts);
    for (let i = 0; i <= 10; i++) w.heartbeat(i * 1000);
    w.heartbeat(10_000 + 60_000);
    expect(w.meanMs()).toBe(1000);
  });

  test('the window keeps only the last N intervals', () => {
    const w = new ArrivalWindow({ ...opts, windowSize: 4 });
    let t = 0;
    for (let i = 0; i < 14; i++) {
      t += i < 10 ? 3000 : 1000;
      w.heartbeat(t);
    }
    expect(w.meanMs()).toBe(1000);
  });

  test('alive below half the threshold, suspect from half, down at the threshold', () => {
    expect(livenessOf(3.9, 8)).toBe('alive');
    expect(livenessOf(4, 8)).toBe('suspect');
    expect(livenessOf(7.99, 8)).toBe('suspect');
    expect(livenessOf(8, 8)).toBe('down');
  });
});
