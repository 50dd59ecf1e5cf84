// An error-level log line means something an operator must look at. A clean run, where clients
// send bad requests and hang up mid-upload but nothing fails, writes none.

import { request } from 'node:http';
import { cleanupClusters, FAST_ARGS, startCluster } from '../helpers/cluster';
import { mapLimit } from '../helpers/eventually';
import { del, get, http, put } from '../helpers/http';

afterEach(cleanupClusters);

/** Sends the start of a PUT whose body it promises longer, then hangs up. */
function abortedUpload(base: string, key: string): Promise<void> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = request({
      host: u.hostname,
      port: u.port,
      method: 'PUT',
      path: `/kv/${key}`,
      headers: { 'content-type': 'application/json', 'content-length': '1000' },
    });
    req.on('error', () => resolve());
    req.write('{"value":"only the start');
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 50);
  });
}

test('a fault-free run with bad requests and clients that go away logs nothing at error level', async () => {
  const c = await startCluster('127.23.11', {
    args: [...FAST_ARGS.filter((a) => a !== 'warn' && a !== '--log-level'), '--log-level', 'info'],
  });
  const urls = c.nodes.map((n) => n.url);
  await mapLimit(
    Array.from({ length: 300 }, (_, i) => i),
    16,
    async (i) => {
      const url = urls[i % 3] as string;
      if (i % 10 === 0) await abortedUpload(url, `gone-${i}`);
      else if (i % 10 === 1)
        await http('PUT', `${url}/kv/bad-${i}`, { body: '{"value": nope', headers: { 'content-type': 'application/json' } });
      else if (i % 10 === 2) await http('GET', `${url}/kv/x?consistancy=all`);
      else if (i % 10 === 3) await del(url, `k-${i - 3}`);
      else if (i % 2) await put(url, `k-${i}`, i);
      else await get(url, `k-${i - 1}`);
    },
  );
  await c.stopAll('SIGTERM');
  const errors = c.nodes.flatMap((n) => n.logTail.filter((l) => /"level":(50|60)/.test(l)).map((l) => `${n.id}: ${l}`));
  expect(errors).toEqual([]);
  // and they were logging: the same run's info lines are there
  expect(c.nodes.every((n) => n.logTail.some((l) => l.includes('"level":30')))).toBe(true);
});
