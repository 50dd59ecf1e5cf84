import { Loop } from '../../src/node/loop';
import { ManualClock } from '../helpers/manual-clock';

test('a loop runs its work every interval, counted from the end of the last run, until stopped', async () => {
  const clock = new ManualClock();
  const runs: number[] = [];
  let release: () => void = () => {};
  const loop = new Loop(clock, 100, () => {
    runs.push(clock.nowMs());
    return new Promise<void>((r) => {
      release = r;
    });
  });
  loop.start();
  await clock.advance(99);
  expect(runs).toHaveLength(0);
  await clock.advance(1);
  expect(runs).toHaveLength(1);
  // a slow run is not overlapped: nothing is scheduled while it runs
  await clock.advance(500);
  expect(runs).toHaveLength(1);
  release();
  await clock.advance(100);
  expect(runs).toHaveLength(2);
  expect((runs[1] as number) - (runs[0] as number)).toBe(600);
  release();
  loop.stop();
  expect(loop.running).toBe(false);
  await clock.advance(1000);
  expect(runs).toHaveLength(2);
  expect(clock.pending()).toBe(0);
});

test('a run that fails does not stop the loop', async () => {
  const clock = new ManualClock();
  let runs = 0;
  const loop = new Loop(clock, 10, async () => {
    runs++;
    throw new Error('boom');
  });
  loop.start();
  await clock.advance(10);
  await clock.advance(10);
  await clock.advance(10);
  expect(runs).toBe(3);
  loop.stop();
});
