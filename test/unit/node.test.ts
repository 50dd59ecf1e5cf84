// The node's protocol on in-memory parts: a manual clock, memory stores and a transport that
// calls the other nodes directly (and can make one silent).

import { silentLogger } from '../../src/core/log';
import type { Message, ReplyOf } from '../../src/core/messages';
import { SeededRandom } from '../../src/core/random';
import { liveRecord } from '../../src/core/record';
import { type Transport, TransportError } from '../../src/net/transport';
import { byteBatches, MAX_BATCH_BYTES } from '../../src/node/batches';
import { QuorumError } from '../../src/node/errors';
import { Node, type NodeConfig } from '../../src/node/node';
import { MemoryStore } from '../../src/storage/memory-store';
import { flushMicrotasks, ManualClock } from '../helpers/manual-clock';

class DirectTransport implements Transport {
  readonly nodes = new Map<string, Node>();
  readonly down = new Set<string>();
  readonly silent = new Set<string>();
  send<M extends Message>(to: string, msg: M): Promise<ReplyOf<M>> {
    if (this.down.has(to)) return Promise.reject(new TransportError('refused', `${to}: ECONNREFUSED`));
    if (this.silent.has(to)) return new Promise(() => {});
    const n = this.nodes.get(to);
    if (!n) return Promise.reject(new TransportError('refused', `${to}: ECONNREFUSED`));
    return n.handle(JSON.parse(JSON.stringify(msg)) as M);
  }
}

async function cluster(count = 3) {
  const clock = new ManualClock();
  const transport = new DirectTransport();
  const addresses = Array.from({ length: count }, (_, i) => `10.0.0.${i + 1}:8080`);
  const stores = addresses.map(() => new MemoryStore());
  const config = (i: number): NodeConfig => ({
    id: `n${i + 1}`,
    address: addresses[i] as string,
    replicationFactor: 3,
    readQuorum: 2,
    writeQuorum: 2,
    vnodes: 16,
    requestTimeoutMs: 1000,
    heartbeatIntervalMs: 100,
    gossipIntervalMs: 100,
    phiConvictThreshold: 8,
    discoveryIntervalMs: 50,
    discoveryMaxIntervalMs: 1000,
    expectedMembers: count,
    maxGossipEntries: 256,
    repair: {
      readRepair: true,
      sloppyQuorum: false,
      hints: { windowMs: 3600_000, maxPerTarget: 1000, deliveryRatePerSec: 1000, tickMs: 100 },
      antiEntropy: { intervalMs: 3600_000, peerPauseMs: 0, maxRecordsPerPass: 10_000 },
      tombstoneGraceMs: 86_400_000,
      compactionTickMs: 1000,
    },
  });
  const discovery = { name: 'static', candidates: () => Promise.resolve({ addresses, problems: [] }) };
  const deps = (i: number) => ({
    clock,
    random: new SeededRandom(i),
    transport,
    store: stores[i] as MemoryStore,
    log: silentLogger,
    discovery,
  });
  const nodes = await Promise.all(addresses.map((_, i) => Node.create(config(i), deps(i))));
  nodes.forEach((n) => {
    transport.nodes.set(n.address, n);
  });
  for (const n of nodes) n.start();
  await clock.advance(500);
  return { clock, transport, nodes, stores, config, deps };
}

describe('node protocol on in-memory parts', () => {
  test('nodes discover each other and agree on the ring', async () => {
    const { nodes } = await cluster();
    for (const n of nodes) {
      expect(n.discoveryStatus().complete).toBe(true);
      expect(n.memberList().map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
    }
    expect(new Set(nodes.map((n) => n.placement().checksum())).size).toBe(1);
  });

  test('a write reaches every replica; a read returns the newest version even when a replica is stale', async () => {
    const { nodes, stores, clock } = await cluster();
    const [n1, n2] = nodes as [Node, Node];
    await n1.put('k', 'v1');
    await clock.advance(1);
    expect(stores.map((s) => s.get('k')?.value)).toEqual(['v1', 'v1', 'v1']);
    const w2 = await n1.put('k', 'v2');
    // make one replica stale by hand: it holds v1
    const stale = stores[2] as MemoryStore;
    await stale.put('k', liveRecord('v1', { wallMs: 1, counter: 0, nodeId: 'n1' }));
    const r = await n2.get('k', 3);
    expect(r.record?.value).toBe('v2');
    expect(r.record?.version).toEqual(w2.record.version);
  });

  test('a coordinator whose clock is behind still issues a newer version after reading a key', async () => {
    const { nodes } = await cluster();
    const [n1, n2] = nodes as [Node, Node];
    // n1 writes with a version from far in the future (a skewed clock)
    const future = { wallMs: 1_900_000_000_000, counter: 0, nodeId: 'n9' };
    await Promise.all(nodes.map((n) => n.handle({ type: 'write', key: 'k', record: liveRecord('from the future', future) })));
    await n2.get('k');
    const w = await n2.put('k', 'later');
    expect(w.record.version.wallMs).toBeGreaterThanOrEqual(future.wallMs);
    expect((await n1.get('k')).record?.value).toBe('later');
  });

  test('a write that loses to a newer version a replica holds, unseen by its coordinator, is written again above it and wins', async () => {
    const { nodes, stores, clock } = await cluster();
    const [n1, n2] = nodes as [Node, Node];
    // every replica holds a version from 30 s ahead of the coordinators' clocks (a skewed node wrote
    // it), and no coordinator has seen it: straight into the stores, past the nodes' clocks
    const ahead = { wallMs: clock.nowMs() + 30_000, counter: 0, nodeId: 'n9' };
    for (const s of stores) await s.put('k', liveRecord('from a clock 30 s ahead', ahead));
    const w = await n2.put('k', 'later');
    expect(w.record.version.wallMs).toBeGreaterThanOrEqual(ahead.wallMs);
    expect((await n1.get('k', 3)).record?.value).toBe('later');
    // and a delete the same way: its tombstone wins, not the value it was meant to delete
    for (const s of stores) await s.put('d', liveRecord('still here?', { ...ahead, wallMs: ahead.wallMs + 1 }));
    await n1.delete('d');
    expect((await n2.get('d', 3)).record?.deleted).toBe(true);
  });

  test('a silent replica is reported as a timeout at the deadline, not waited on', async () => {
    const { nodes, transport, clock } = await cluster();
    transport.silent.add('10.0.0.3:8080');
    const n1 = nodes[0] as Node;
    const ok = await n1.put('k', 1);
    expect(ok.acked.sort()).toEqual(['n1', 'n2']);
    let failure: unknown;
    const all = n1.put('k', 2, 3).catch((e: unknown) => {
      failure = e;
    });
    await clock.advance(999);
    expect(failure).toBeUndefined();
    await clock.advance(1);
    await all;
    expect(failure).toBeInstanceOf(QuorumError);
    expect((failure as QuorumError).details.failures).toEqual([
      { replica: 'n3', kind: 'timeout', reason: 'timeout: no reply within 1000 ms' },
    ]);
  });

  test('a restarted node keeps its members and takes a higher generation', async () => {
    const { nodes, config, deps } = await cluster();
    const old = nodes[0] as Node;
    old.stop();
    const again = await Node.create(config(0), deps(0));
    expect(again.generation).toBeGreaterThan(old.generation);
    expect(again.memberList().map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
    expect(again.placement().checksum()).toBe(old.placement().checksum());
  });

  test('a store that belongs to another node id is refused', async () => {
    const { config, deps } = await cluster();
    await expect(Node.create({ ...config(1), id: 'intruder' }, deps(1))).rejects.toThrow('belongs to node "n2"');
  });

  test('malformed messages from peers are refused', async () => {
    const { nodes } = await cluster();
    const n = nodes[0] as Node;
    await expect(n.handle({ type: 'write', key: '', record: liveRecord(1, { wallMs: 1, counter: 0, nodeId: 'x' }) })).rejects.toThrow(
      'key must not be empty',
    );
    await expect(n.handle({ type: 'write', key: 'k', record: { version: { wallMs: 1 } } } as never)).rejects.toThrow(
      'write needs a record',
    );
    await expect(n.handle({ type: 'nope' } as never)).rejects.toThrow('unknown message type');
    await flushMicrotasks();
  });

  test('streamed pages and write batches stay within what a peer takes in one message, large values or not', async () => {
    const { nodes, stores } = await cluster();
    const n1 = nodes[0] as Node;
    const big = 'x'.repeat(200 * 1024);
    const keys = Array.from({ length: 12 }, (_, i) => `big-${i}`);
    const huge = 'y'.repeat(700 * 1024); // larger than a page's budget: it goes alone
    for (const k of keys) await stores[0]?.put(k, liveRecord(k === 'big-3' ? huge : big, { wallMs: 1, counter: 0, nodeId: 'n1' }));
    const seen: string[] = [];
    let after: number | undefined;
    for (let pages = 0; pages < 50; pages++) {
      const page = await n1.handle({
        type: 'stream-range',
        lo: 0,
        hi: 0,
        maxRecords: 2000,
        maxBytes: MAX_BATCH_BYTES,
        ...(after === undefined ? {} : { after }),
      });
      const bytes = JSON.stringify(page.records).length;
      if (page.records.length > 1) expect(bytes).toBeLessThanOrEqual(MAX_BATCH_BYTES);
      seen.push(...page.records.map(([k]) => k).filter((k) => k.startsWith('big-')));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect([...seen].sort()).toEqual([...keys].sort());
    // and a batch splits by bytes, never leaving an item out or an empty batch
    const sizes = [300, 300, 900, 10, 10];
    const batches = byteBatches(sizes, (x) => x, 600);
    expect(batches).toEqual([[300, 300], [900], [10, 10]]);
  });
});
