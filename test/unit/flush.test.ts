// The flush scheduler on its own: when a connection's frames are written at once and when they wait
// for the event-loop turn's end. The transport tests count the same writes on real sockets.

import { type Flushable, FlushScheduler } from '../../src/net/flush';

/** A connection that records the frames each of its writes carried. */
class Connection implements Flushable {
  queued = 0;
  readonly writes: number[] = [];
  constructor(private readonly flusher: FlushScheduler) {}
  send(): void {
    this.queued++;
    this.flusher.mark(this);
  }
  flush(): number {
    if (this.queued === 0) return 0;
    const frames = this.queued;
    this.writes.push(frames);
    this.queued = 0;
    return frames;
  }
}

const turnEnd = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a lone frame is written at once; the rest of its turn waits for the turn end, in one write', async () => {
  const c = new Connection(new FlushScheduler());
  c.send();
  expect(c.writes).toEqual([1]); // before the turn ends
  c.send();
  c.send();
  expect(c.writes).toEqual([1]);
  await turnEnd();
  expect(c.writes).toEqual([1, 2]);
});

test('after a write of several frames a connection batches until a turn gives it one frame', async () => {
  const c = new Connection(new FlushScheduler());
  c.send();
  c.send();
  c.send();
  await turnEnd();
  expect(c.writes).toEqual([1, 2]);
  // its last write carried two frames: the next one waits for the turn's end, even alone
  c.send();
  expect(c.writes).toEqual([1, 2]);
  await turnEnd();
  expect(c.writes).toEqual([1, 2, 1]);
  // that write carried one: the next leaves at once again
  c.send();
  expect(c.writes).toEqual([1, 2, 1, 1]);
  await turnEnd();
  expect(c.writes).toEqual([1, 2, 1, 1]);
});

test('connections are judged each on its own: a lone frame to each leaves at once', async () => {
  const flusher = new FlushScheduler();
  const a = new Connection(flusher);
  const b = new Connection(flusher);
  // b batches (its last write carried two frames); a does not
  b.send();
  b.send();
  b.send();
  await turnEnd();
  a.send();
  b.send();
  expect(a.writes).toEqual([1]);
  expect(b.writes).toEqual([1, 2]);
  await turnEnd();
  expect(b.writes).toEqual([1, 2, 1]);
});

test('a connection with nothing to write changes nothing', async () => {
  const flusher = new FlushScheduler();
  const c = new Connection(flusher);
  flusher.mark(c); // marked with nothing queued (a frame that could not be encoded, say)
  await turnEnd();
  expect(c.writes).toEqual([]);
  c.send();
  expect(c.writes).toEqual([1]);
});

test('a node with more than one message in hand batches even a lone frame', async () => {
  let busy = true;
  const c = new Connection(new FlushScheduler(() => !busy));
  c.send();
  expect(c.writes).toEqual([]);
  await turnEnd();
  expect(c.writes).toEqual([1]);
  busy = false;
  c.send();
  expect(c.writes).toEqual([1, 1]);
});
