// The internode transport and server, in one process on loopback: the handshake (versions, the
// cluster token, each side proving it without sending it), calls matched to replies on one
// connection, one socket write per event-loop turn, deadlines, and the failure kinds a caller sees.

import net from 'node:net';
import { OutBuffer, Reader } from '../../src/core/bytes';
import type { Logger } from '../../src/core/log';
import type { Message } from '../../src/core/messages';
import { Metrics } from '../../src/metrics';
import { PeerServer } from '../../src/net/peer-server';
import { PeerTransport } from '../../src/net/peer-transport';
import { Kind, MAGIC, NONCE_BYTES, PROOF_BYTES } from '../../src/net/protocol';
import { TransportError } from '../../src/net/transport';
import { FrameSplitter } from '../../src/net/wire';
import { BadMessageError } from '../../src/node/errors';

interface Logged {
  level: string;
  msg: string;
  obj: object;
}

function recorder(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, obj });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const HOST = '127.31.0.1';
let nextPort = 21_000;

interface Pair {
  server: PeerServer;
  transport: PeerTransport;
  serverLog: ReturnType<typeof recorder>;
  clientLog: ReturnType<typeof recorder>;
  metrics: Metrics;
  /** The API address the transport is given (the internode port is one above). */
  api: string;
  port: number;
}

const open: Pair[] = [];

async function pair(
  opts: {
    handle?: (msg: Message) => Promise<unknown>;
    /** As --cluster-secret takes it: `current[,next]`. */
    serverToken?: string;
    clientToken?: string;
    serverVersions?: { min: number; max: number };
    clientVersions?: { min: number; max: number };
  } = {},
): Promise<Pair> {
  const port = nextPort++;
  const serverLog = recorder();
  const clientLog = recorder();
  const metrics = new Metrics();
  const server = new PeerServer({
    nodeId: 'server',
    clusterTokens: opts.serverToken?.split(',') ?? [],
    handle: opts.handle ?? (async (msg) => (msg.type === 'read' ? { record: null } : { applied: true })),
    log: serverLog,
    metrics,
    maxFrameBytes: 1 << 20,
    apiAddress: `${HOST}:${port - 1}`,
    ...(opts.serverVersions ? { versions: opts.serverVersions } : {}),
  });
  await server.listen(port, HOST);
  const transport = new PeerTransport({
    nodeId: 'client',
    clusterTokens: opts.clientToken?.split(',') ?? [],
    peerAddress: (a) => `${a.split(':')[0]}:${Number(a.split(':')[1]) + 1}`,
    log: clientLog,
    metrics,
    maxFrameBytes: 1 << 20,
    ...(opts.clientVersions ? { versions: opts.clientVersions } : {}),
  });
  const p = { server, transport, serverLog, clientLog, metrics, api: `${HOST}:${port - 1}`, port };
  open.push(p);
  return p;
}

afterEach(async () => {
  for (const p of open.splice(0)) {
    await p.transport.close();
    await p.server.close();
  }
});

const read = (key: string): Message => ({ type: 'read', key });

/** A hand-made client: magic, hello, then `auth` as its proof; resolves with the server's refusal text ('' if none). */
function rawHandshake(port: number, auth: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    const splitter = new FrameSplitter(4096);
    let refusal = '';
    s.on('connect', () => {
      const out = new OutBuffer(64);
      out.bytes(MAGIC);
      const at = out.reserve32();
      out.u8(Kind.hello);
      out.u16(1);
      out.u16(1);
      out.bytes(Buffer.alloc(NONCE_BYTES, 1));
      out.str('intruder', 1);
      out.patch32(at, out.length - at - 4);
      s.write(out.take());
    });
    s.on('data', (chunk: Buffer) => {
      for (const f of splitter.push(chunk)) {
        const r = new Reader(f);
        const kind = r.u8();
        if (kind === Kind.challenge) {
          const out = new OutBuffer(64);
          const at = out.reserve32();
          out.u8(Kind.auth);
          out.bytes(auth);
          out.patch32(at, out.length - at - 4);
          s.write(out.take());
        } else if (kind === Kind.refused) refusal = r.str(2);
      }
    });
    s.on('close', () => resolve(refusal));
    s.on('error', reject);
  });
}

async function failure(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TransportError);
    return err as TransportError;
  }
  throw new Error('the call succeeded');
}

test('calls share one connection and are matched to their replies by id', async () => {
  const { transport, server } = await pair({
    handle: async (msg) => {
      const key = (msg as { key: string }).key;
      // answer out of order: later keys first
      await new Promise((r) => setTimeout(r, 20 - Number(key)));
      return { record: { version: { wallMs: Number(key), counter: 0, nodeId: 'n' }, value: key } };
    },
  });
  const api = `${HOST}:${nextPort - 2}`;
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => transport.send(api, read(String(i)), 2000)));
  expect(replies.map((r) => (r as { record: { value: unknown } | null }).record?.value)).toEqual(
    Array.from({ length: 20 }, (_, i) => String(i)),
  );
  expect(transport.connectionCount()).toBe(1);
  expect(server.connectionCount()).toBe(1);
});

test('the frames queued in one event-loop turn leave in one socket write (after a lone one, the rest of them)', async () => {
  const { transport, metrics, api } = await pair();
  await transport.send(api, read('warm'), 2000); // connected and handshaken; its write carried one frame
  const writesOut = (text: string) => Number(/quorumkv_internode_socket_writes_total\{direction="out"\} (\d+)/.exec(text)?.[1]);
  const framesOut = (text: string) => Number(/quorumkv_internode_frames_sent_total\{direction="out"\} (\d+)/.exec(text)?.[1]);
  const burst = async () => {
    const before = await metrics.render();
    await Promise.all(Array.from({ length: 100 }, (_, i) => transport.send(api, read(`k${i}`), 2000)));
    const after = await metrics.render();
    return { frames: framesOut(after) - framesOut(before), writes: writesOut(after) - writesOut(before) };
  };
  // the first leaves at once (the last write carried one frame), the other 99 at the turn's end
  expect(await burst()).toEqual({ frames: 100, writes: 2 });
  // the last write carried 99: all 100 wait for the turn's end
  expect(await burst()).toEqual({ frames: 100, writes: 1 });
});

test('the server counts the requests it is handling, on every connection, until each is answered', async () => {
  const release: Array<() => void> = [];
  const { transport, server, api } = await pair({
    handle: () => new Promise((resolve) => release.push(() => resolve({ record: null }))),
  });
  const calls = [transport.send(api, read('a'), 5000), transport.send(api, read('b'), 5000)];
  while (release.length < 2) await new Promise((r) => setTimeout(r, 5));
  expect(server.callsInHand()).toBe(2);
  (release.shift() as () => void)();
  await calls[0];
  expect(server.callsInHand()).toBe(1);
  // a call whose connection is gone still stops counting once its handler is done
  const third = transport.send(api, read('c'), 5000).catch(() => undefined);
  while (release.length < 2) await new Promise((r) => setTimeout(r, 5));
  expect(server.callsInHand()).toBe(2);
  await transport.close();
  for (const r of release.splice(0)) r();
  await Promise.allSettled([calls[1], third]);
  await new Promise((r) => setImmediate(r));
  expect(server.callsInHand()).toBe(0);
});

test('a peer that does not answer costs a call its deadline, and no more', async () => {
  const { transport, api } = await pair({ handle: () => new Promise(() => {}) });
  const started = performance.now();
  const err = await failure(transport.send(api, read('a'), 150));
  const elapsed = performance.now() - started;
  expect(err.kind).toBe('timeout');
  expect(elapsed).toBeGreaterThanOrEqual(149);
  expect(elapsed).toBeLessThan(400);
  // calls with different deadlines each end at their own
  const t0 = performance.now();
  const ends = await Promise.all(
    [300, 50, 200].map((ms) => failure(transport.send(api, read('b'), ms)).then(() => Math.round(performance.now() - t0))),
  );
  expect(ends[1] as number).toBeLessThan(ends[2] as number);
  expect(ends[2] as number).toBeLessThan(ends[0] as number);
});

test('nothing listening is refused; a peer that closes mid-call is unreachable', async () => {
  const { transport } = await pair();
  expect((await failure(transport.send(`${HOST}:${nextPort + 50}`, read('a'), 1000))).kind).toBe('refused');

  const p = await pair({ handle: () => new Promise(() => {}) });
  const call = p.transport.send(p.api, read('a'), 5000);
  await new Promise((r) => setTimeout(r, 100));
  await p.server.close();
  const err = await failure(call);
  expect(err.kind).toBe('unreachable');
});

test('a request the peer refuses is rejected with its reason; a malformed one never reaches the handler', async () => {
  const seen: Message[] = [];
  const { transport, api } = await pair({
    handle: async (msg) => {
      seen.push(msg);
      throw new BadMessageError('not a member yet');
    },
  });
  const err = await failure(transport.send(api, read('a'), 1000));
  expect(err.kind).toBe('rejected');
  expect(err.message).toContain('not a member yet');
  const bad = await failure(transport.send(api, { type: 'write-batch', records: [1] } as unknown as Message, 1000));
  expect(bad.kind).toBe('rejected');
  expect(bad.message).toContain('write-batch.records[0]: must be an array of 2');
  expect(seen.map((m) => m.type)).toEqual(['read']);
});

test('peers with different cluster tokens refuse each other, each saying why, and the token never crosses the wire', async () => {
  const captured: Buffer[] = [];
  const { transport, api, serverLog, clientLog, port } = await pair({ serverToken: 'token-A', clientToken: 'token-B' });
  // a tap in front of the server records every byte the client sends
  const tapPort = nextPort++;
  const tap = net.createServer((client) => {
    const upstream = net.connect(port, HOST);
    client.on('data', (d: Buffer) => {
      captured.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => tap.listen(tapPort, HOST, r));
  try {
    const viaTap = `${HOST}:${tapPort - 1}`;
    const err = await failure(transport.send(viaTap, read('a'), 2000));
    expect(err.kind).toBe('rejected');
    expect(err.message).toContain("does not hold this cluster's token");
    expect(clientLog.lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      expect.stringContaining("does not hold this cluster's token"),
    ]);
    // the client told the server why it left, so both logs say it
    await new Promise((r) => setTimeout(r, 50));
    expect(serverLog.lines.some((l) => l.level === 'warn' && /does not hold the same cluster token/.test(l.msg))).toBe(true);
    // a client that does not hold the token cannot prove it: the server refuses it, and says so
    const refusal = await rawHandshake(port, Buffer.alloc(PROOF_BYTES, 7));
    expect(refusal).toContain('the cluster token differs');
    await new Promise((r) => setTimeout(r, 50));
    expect(serverLog.lines.some((l) => l.level === 'warn' && /does not hold this cluster's token/.test(l.msg))).toBe(true);
    expect(api).toBeDefined();
    const wire = Buffer.concat(captured).toString('latin1');
    expect(wire).not.toContain('token-A');
    expect(wire).not.toContain('token-B');
  } finally {
    tap.close();
  }
});

test('a node holding current,next lets in peers proving either, and refuses a third token, in both directions', async () => {
  // what a rotation A -> B meets: nodes holding A, then A,B, then B,A, then B
  const connects = async (serverToken: string, clientToken: string) => {
    const { transport, api } = await pair({ serverToken, clientToken });
    try {
      await transport.send(api, read('k'), 2000);
      return 'ok';
    } catch (err) {
      expect(err).toBeInstanceOf(TransportError);
      expect((err as TransportError).kind).toBe('rejected');
      return 'refused';
    }
  };
  const seen: Record<string, string> = {};
  for (const [server, client] of [
    ['tok-A', 'tok-A,tok-B'], // first restart: the new list meets the old token
    ['tok-A,tok-B', 'tok-A'],
    ['tok-A,tok-B', 'tok-B,tok-A'], // second restart: lists in either order
    ['tok-B,tok-A', 'tok-A,tok-B'],
    ['tok-B,tok-A', 'tok-B'], // the old token dropped
    ['tok-B', 'tok-B,tok-A'],
    ['tok-A,tok-B', 'tok-C'], // a third token: refused by the server...
    ['tok-C', 'tok-A,tok-B'], // ...and by the client
    ['tok-A,tok-B', 'tok-C,tok-D'],
    ['tok-A', 'tok-B,tok-A'], // why a rotation takes two restarts: B-first cannot meet A-only
    ['tok-B,tok-A', 'tok-A'],
  ]) {
    seen[`${server} <- ${client}`] = await connects(server as string, client as string);
  }
  expect(seen).toEqual({
    'tok-A <- tok-A,tok-B': 'ok',
    'tok-A,tok-B <- tok-A': 'ok',
    'tok-A,tok-B <- tok-B,tok-A': 'ok',
    'tok-B,tok-A <- tok-A,tok-B': 'ok',
    'tok-B,tok-A <- tok-B': 'ok',
    'tok-B <- tok-B,tok-A': 'ok',
    'tok-A,tok-B <- tok-C': 'refused',
    'tok-C <- tok-A,tok-B': 'refused',
    'tok-A,tok-B <- tok-C,tok-D': 'refused',
    'tok-A <- tok-B,tok-A': 'refused',
    'tok-B,tok-A <- tok-A': 'refused',
  });
});

test('a version mismatch is refused with a clear line on both sides', async () => {
  const { transport, api, serverLog, clientLog } = await pair({ serverVersions: { min: 2, max: 3 }, clientVersions: { min: 1, max: 1 } });
  const err = await failure(transport.send(api, read('a'), 2000));
  expect(err.kind).toBe('rejected');
  expect(err.message).toContain('speaks internode protocol versions 2..3, this node 1..1');
  expect(clientLog.lines.find((l) => l.level === 'error')?.msg).toContain('no version in common');
  await new Promise((r) => setTimeout(r, 50));
  expect(serverLog.lines.find((l) => l.level === 'warn')?.msg).toContain('it speaks internode protocol versions 1..1, this node 2..3');
  // and the caller is not made to reconnect for every call meanwhile
  const again = await failure(transport.send(api, read('b'), 2000));
  expect(again.message).toBe(err.message);
});

test('an HTTP request to the internode port is told where the API is; garbage is dropped', async () => {
  const { port, server } = await pair();
  const res = await fetch(`http://${HOST}:${port}/kv/a`);
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { code: string; message: string } }).error).toEqual({
    code: 'wrong_port',
    message: `this is the internode port of quorumkv node server (node-to-node protocol); its HTTP API is at http://${HOST}:${port - 1}`,
  });
  const closed = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, HOST, () => s.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3])));
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
  });
  expect(closed).toBe(true);
  // a stranger that sends the magic and then garbage frames loses its connection too
  const closed2 = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, HOST, () => s.write(Buffer.concat([MAGIC, Buffer.from([0, 0, 0, 2, 0x10, 0])])));
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
  });
  expect(closed2).toBe(true);
  expect(server.connectionCount()).toBe(0);
});
