// The benchmark's floor (scripts/lib/quorum-floor.ts) is read against quorumkv's single-client
// latency, so it must do the work it stands for: a write lands in the members' files, a read
// answers the value written, an unknown key is a 404. Real processes on loopback. (That the ack
// waits for two of the three writes is the code's word: the third can land between the ack and a
// look at the files, so no test here could tell.)

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FloorCluster } from '../../scripts/lib/quorum-floor';

describe('the quorum floor', () => {
  let dir: string;
  let floor: FloorCluster | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'floor-test-'));
  });

  afterEach(async () => {
    await floor?.stop();
    floor = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  test("a write lands in the members' files and reads back from every member", async () => {
    floor = await FloorCluster.start(dir, '127.62.1.1', 19081);
    const body = JSON.stringify({ value: 'floor-marker-0123456789' });
    const put = await fetch(`http://${floor.targets[1]}/kv/k1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ key: 'k1', stored: true });

    const holding = readdirSync(dir).filter((f) => readFileSync(path.join(dir, f)).includes(body));
    expect(holding.length).toBeGreaterThanOrEqual(2);

    for (const t of floor.targets) {
      const got = await fetch(`http://${t}/kv/k1`);
      expect(got.status).toBe(200);
      expect(await got.json()).toEqual({ value: 'floor-marker-0123456789' });
    }
    const missing = await fetch(`http://${floor.targets[0]}/kv/never-written`);
    expect(missing.status).toBe(404);
  });
});
