// The commit log on its own: what replay returns after a torn write, after segments are reused,
// and what happens when LMDB falls behind (appends wait, then are refused). The store's kill -9
// tests (lmdb-store.test.ts) cover the log and LMDB together.

import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { liveRecord } from '../../src/core/record';
import { CommitLog, type CommitLogOptions, FRAME_HEADER_BYTES, type LogPosition } from '../../src/storage/commit-log';
import { encodeWrite } from '../../src/storage/record-codec';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-log-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: 'n1' });
const frame = (i: number, pad = 0) =>
  encodeWrite({ key: `k${i}`, record: liveRecord({ i, pad: 'x'.repeat(pad) }, v(i)) }, FRAME_HEADER_BYTES);
const options = (over: Partial<CommitLogOptions> = {}): CommitLogOptions => ({
  dir,
  segmentBytes: 64 * 1024,
  maxSegments: 4,
  maxWaitingAppends: 100,
  onPressure: () => {},
  ...over,
});
const keys = (replay: ReadonlyArray<{ write: { key: string } }>) => replay.map((r) => r.write.key);

test('replay returns every appended write in order, and nothing before the applied position', async () => {
  const { log } = CommitLog.open(options(), undefined);
  const positions: LogPosition[] = [];
  for (let i = 0; i < 10; i++) positions.push(await log.append(frame(i)));
  await log.close();
  const all = CommitLog.open(options(), undefined);
  expect(keys(all.replay)).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`));
  expect(all.replay.map((r) => r.position)).toEqual(positions);
  await all.log.close();
  const after = CommitLog.open(options(), positions[6]);
  expect(keys(after.replay)).toEqual(['k7', 'k8', 'k9']);
  await after.log.close();
});

test('a torn last write ends the log there: the writes before it replay, the damaged one does not', async () => {
  const { log } = CommitLog.open(options(), undefined);
  let last: LogPosition | undefined;
  for (let i = 0; i < 3; i++) last = await log.append(frame(i, 50));
  await log.close();
  // damage the last frame's final byte, as a write cut short by a power loss would leave it
  const file = path.join(dir, readdirSync(dir).sort()[0] as string);
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, (last as LogPosition).offset - 1);
  b[0] = (b[0] as number) ^ 0xff;
  writeSync(fd, b, 0, 1, (last as LogPosition).offset - 1);
  closeSync(fd);
  const again = CommitLog.open(options(), undefined);
  expect(keys(again.replay)).toEqual(['k0', 'k1']);
  await again.log.close();
});

test('segments are reused once applied, and frames left from their earlier use never replay', async () => {
  const { log } = CommitLog.open(options(), undefined);
  let last: LogPosition = { seq: 0, offset: 0 };
  // ~1 KiB writes into 64 KiB segments, applied as they go: many times round the 4 segments
  for (let i = 0; i < 1000; i++) {
    last = await log.append(frame(i, 1000));
    if (i % 20 === 19) log.applied(last);
  }
  expect(last.seq).toBeGreaterThan(12);
  expect(readdirSync(dir).length).toBeLessThanOrEqual(4);
  await log.close();
  // everything applied: a reopen replays nothing, though every segment is full of old frames
  const applied = CommitLog.open(options(), last);
  expect(applied.replay).toEqual([]);
  await applied.log.close();
  // applied 20 writes short: exactly those 20, in order
  const short = CommitLog.open(options(), undefined);
  const tail = short.replay.slice(-20);
  await short.log.close();
  expect(keys(tail)).toEqual(Array.from({ length: 20 }, (_, i) => `k${980 + i}`));
});

test('when LMDB falls behind, appends wait for a free segment, then are refused past the bound; applying frees them', async () => {
  let pressured = 0;
  const { log } = CommitLog.open(options({ maxSegments: 2, maxWaitingAppends: 5, onPressure: () => pressured++ }), undefined);
  // same-sized frames: two segments hold exactly 2 × floor(60 KiB / frame) of them, then nothing is applied
  const sized = (i: number) =>
    encodeWrite({ key: `k${String(i).padStart(4, '0')}`, record: liveRecord('x'.repeat(1000), v(i)) }, FRAME_HEADER_BYTES);
  const perSegment = Math.floor((64 * 1024 - 4096) / sized(0).bytes.length);
  const outcomes = Array.from({ length: 2 * perSegment + 20 }, (_, i) =>
    log.append(sized(i)).then(
      (p) => ({ i, p }),
      (e: Error) => ({ i, e }),
    ),
  );
  const settledFirst = await Promise.all(outcomes.slice(0, 2 * perSegment));
  expect(settledFirst.every((o) => 'p' in o)).toBe(true);
  const refused = await Promise.all(outcomes.slice(2 * perSegment + 5));
  expect(refused.map((o) => ('e' in o ? o.e.message : 'placed'))).toEqual(
    Array(15).fill('commit log: full (2 segments not yet applied to the database)'),
  );
  expect(log.waitingCount()).toBe(5);
  expect(pressured).toBeGreaterThan(0);
  // LMDB catches up with everything placed: the five waiting go into a reused segment, in order
  const last = settledFirst[settledFirst.length - 1] as { p: LogPosition };
  log.applied(last.p);
  const waited = await Promise.all(outcomes.slice(2 * perSegment, 2 * perSegment + 5));
  expect(waited.map((o) => ('p' in o ? o.p.seq : -1))).toEqual(Array(5).fill(last.p.seq + 1));
  await log.close();
});

test('a write larger than a segment is refused with the sizes, and the log goes on', async () => {
  const { log } = CommitLog.open(options(), undefined);
  await expect(log.append(frame(1, 70_000))).rejects.toThrow(/does not fit a 65536-byte segment/);
  await expect(log.append(frame(2))).resolves.toMatchObject({ seq: expect.any(Number) });
  await log.close();
});

test('segments written larger than the size the log now uses are read to their end', async () => {
  const { log } = CommitLog.open(options({ segmentBytes: 256 * 1024 }), undefined);
  for (let i = 0; i < 150; i++) await log.append(frame(i, 1000)); // ~160 KiB: past 64 KiB in one segment
  await log.close();
  const smaller = CommitLog.open(options({ segmentBytes: 64 * 1024 }), undefined);
  expect(keys(smaller.replay)).toEqual(Array.from({ length: 150 }, (_, i) => `k${i}`));
  await smaller.log.close();
});

test('an apply that frees no segment leaves the waiting appends waiting once each; they are written once, in order', async () => {
  const { log } = CommitLog.open(options({ maxSegments: 2, maxWaitingAppends: 50 }), undefined);
  const sized = (i: number) =>
    encodeWrite({ key: `k${String(i).padStart(4, '0')}`, record: liveRecord('x'.repeat(1000), v(i)) }, FRAME_HEADER_BYTES);
  const perSegment = Math.floor((64 * 1024 - 4096) / sized(0).bytes.length);
  const placed = await Promise.all(Array.from({ length: 2 * perSegment }, (_, i) => log.append(sized(i))));
  const waiting = Array.from({ length: 10 }, (_, i) => log.append(sized(2 * perSegment + i)));
  // LMDB got through the first segment only: the second (and the active one) still hold unapplied writes
  log.applied(placed[0] as LogPosition);
  log.applied(placed[perSegment - 1] as LogPosition);
  expect(log.waitingCount()).toBe(10);
  log.applied(placed[placed.length - 1] as LogPosition);
  await Promise.all(waiting);
  await log.close();
  const again = CommitLog.open(options({ maxSegments: 2 }), placed[placed.length - 1]);
  expect(keys(again.replay)).toEqual(Array.from({ length: 10 }, (_, i) => `k${String(2 * perSegment + i).padStart(4, '0')}`));
  await again.log.close();
});

test('a lone append goes to disk at once; appends that follow in its turn share the next disk write', async () => {
  const { log } = CommitLog.open(options(), undefined);
  await log.append(frame(0)); // the segment's header and one frame on disk: the last write carried one
  const writesFor = async (appends: number) => {
    const before = log.diskWrites;
    await Promise.all(Array.from({ length: appends }, (_, i) => log.append(frame(100 + i))));
    return log.diskWrites - before;
  };
  // the first of the turn leaves at once, alone; the other three wait for it, then go together
  expect(await writesFor(4)).toBe(2);
  // the last write carried three: a turn's appends all wait for the turn's end, one write
  expect(await writesFor(4)).toBe(1);
  // so does a lone one; its write carries one frame, so the next turn's first leaves at once again
  expect(await writesFor(1)).toBe(1);
  expect(await writesFor(3)).toBe(2);
  await log.close();
  const again = CommitLog.open(options(), undefined);
  expect(again.replay).toHaveLength(13);
  await again.log.close();
});

test('a node with more than one message in hand leaves even a lone append for the turn end', async () => {
  let busy = false;
  const { log } = CommitLog.open(options({ alone: () => !busy }), undefined);
  await log.append(frame(0));
  const writesFor = async (from: number, appends: number) => {
    const before = log.diskWrites;
    await Promise.all(Array.from({ length: appends }, (_, i) => log.append(frame(from + i))));
    return log.diskWrites - before;
  };
  busy = true;
  expect(await writesFor(10, 4)).toBe(1); // the last write carried one, but the node is busy
  expect(await writesFor(20, 1)).toBe(1);
  busy = false;
  expect(await writesFor(30, 4)).toBe(2); // alone again: the first at once, the other three after it
  await log.close();
});

test("a lone append is written on the loop's thread while the disk is fast, else in the pool", async () => {
  // each append in a turn of its own, as a node's requests arrive
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
  // a budget no disk write meets: the first lone write is made on the loop, takes longer than the
  // budget, and sends the lone writes after it to the pool
  const slow = CommitLog.open(options({ loopWriteMaxMs: 0 }), undefined);
  expect(slow.log.loopWrites).toBe(1); // the segment's header, at open
  for (let i = 0; i < 3; i++) {
    await nextTurn();
    await slow.log.append(frame(i));
  }
  expect(slow.log.loopWrites).toBe(1);
  expect(slow.log.diskWrites).toBe(4);
  await slow.log.close();
  rmSync(dir, { recursive: true, force: true });
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-log-'));

  // within the budget: every lone write on the loop; what its turn appends after it waits for the
  // turn's end, and goes in one write, in the pool
  const fast = CommitLog.open(options({ loopWriteMaxMs: 60_000 }), undefined);
  for (let i = 0; i < 3; i++) {
    await nextTurn();
    await fast.log.append(frame(i));
  }
  expect(fast.log.loopWrites).toBe(4); // the header and three frames
  await nextTurn();
  const positions = await Promise.all([10, 11, 12].map((i) => fast.log.append(frame(i))));
  expect(fast.log.loopWrites).toBe(5);
  expect(fast.log.diskWrites).toBe(6);
  await fast.log.close();
  const again = CommitLog.open(options(), undefined);
  expect(keys(again.replay)).toEqual(['k0', 'k1', 'k2', 'k10', 'k11', 'k12']);
  expect(again.replay.slice(-3).map((r) => r.position)).toEqual(positions);
  await again.log.close();
});
