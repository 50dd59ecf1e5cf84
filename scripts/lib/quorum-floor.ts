// The least a quorum write costs on this machine: three bare processes that do only what any
// N=3, W=2 write must do, and nothing a database does besides. The benchmark runs it beside quorumkv
// in the same rounds, so a single client's latency can be read against this machine's floor rather
// than against a number from another day (its disk, its virtual CPUs' wake-ups and its scheduler
// move from run to run by more than the difference being looked for).
//
// What a member does, and no more:
//   PUT /kv/<key> on any member: reads the body, sends it in one length-prefixed frame over a
//   persistent TCP connection (no delay) to each of the two others, appends it to its own file with
//   an O_DSYNC write (preallocated and zero-filled, as quorumkv's commit log is), and answers 200
//   once two of the three writes are on disk. A member that receives a frame appends it the same
//   way and answers with a frame of its own. Values are kept in a Map.
//   GET /kv/<key>: its own copy and one other member's (R=2), the newer of the two by write order.
// No versions, validation, placement, metrics, timers, group commit or recovery: a floor, not a
// store. Durability per write is quorumkv's (synced on W replicas before the ack); one write at a
// time per member, as the single-client phases issue them.
//
// As a process: node dist/scripts/lib/quorum-floor.js <host> <http-port> <frame-port> <dir> <peer-frame-port>...

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, constants, fsyncSync, openSync, write as writeAsync, writeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { FRAME_HEADER_BYTES, FrameSplitter } from '../../src/net/wire';
import { repoRoot } from './local-cluster';

const FILE_BYTES = 16 << 20;
/**
 * Framed as quorumkv's internode wire is (src/net/wire.ts: u32 length, then the body), split by its
 * FrameSplitter. Body: u32 id | u8 op | u16 key bytes | key | value. Reply body: u32 id | u8 op | value.
 */
const PUT = 1;
const GET = 2;

/** Frame bodies are at most a value (the bench's are 100 bytes) and its key. */
const MAX_FRAME_BYTES = 2 << 20;

/** Hands `onFrame` each whole frame body a socket's chunks complete. */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  const splitter = new FrameSplitter(MAX_FRAME_BYTES);
  return (chunk) => {
    for (const f of splitter.push(chunk)) onFrame(f);
  };
}

function frame(id: number, op: number, key: string, value: Buffer): Buffer {
  const k = Buffer.from(key);
  const f = Buffer.allocUnsafe(4 + 4 + 1 + 2 + k.length + value.length);
  f.writeUInt32BE(f.length - FRAME_HEADER_BYTES, 0);
  f.writeUInt32LE(id, 4);
  f.writeUInt8(op, 8);
  f.writeUInt16LE(k.length, 9);
  k.copy(f, 11);
  value.copy(f, 11 + k.length);
  return f;
}

function reply(id: number, op: number, value: Buffer): Buffer {
  const f = Buffer.allocUnsafe(9 + value.length);
  f.writeUInt32BE(f.length - FRAME_HEADER_BYTES, 0);
  f.writeUInt32LE(id, 4);
  f.writeUInt8(op, 8);
  value.copy(f, 9);
  return f;
}

function member(host: string, httpPort: number, framePort: number, dir: string, peerPorts: number[]): void {
  const file = path.join(dir, `floor-${framePort}.log`);
  const init = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC);
  const zeros = Buffer.alloc(1 << 20);
  for (let at = 0; at < FILE_BYTES; at += zeros.length) writeSync(init, zeros, 0, zeros.length, at);
  fsyncSync(init);
  closeSync(init);
  const fd = openSync(file, constants.O_RDWR | constants.O_DSYNC);
  let offset = 0;
  const durable = (bytes: Buffer, done: () => void) => {
    if (offset + bytes.length > FILE_BYTES) offset = 0;
    const at = offset;
    offset += bytes.length;
    writeAsync(fd, bytes, 0, bytes.length, at, (err) => {
      if (err) throw err;
      done();
    });
  };
  const values = new Map<string, Buffer>();

  net
    .createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy());
      socket.on(
        'data',
        framer((f) => {
          const id = f.readUInt32LE(0);
          const op = f.readUInt8(4);
          const keyEnd = 7 + f.readUInt16LE(5);
          const key = f.toString('utf8', 7, keyEnd);
          if (op === GET) {
            socket.write(reply(id, GET, values.get(key) ?? Buffer.alloc(0)));
            return;
          }
          const value = Buffer.from(f.subarray(keyEnd));
          durable(value, () => {
            values.set(key, value);
            socket.write(reply(id, PUT, Buffer.alloc(0)));
          });
        }),
      );
    })
    .listen(framePort, host);

  let nextId = 1;
  const waiting = new Map<number, (value: Buffer) => void>();
  const onReply = (f: Buffer) => {
    const id = f.readUInt32LE(0);
    const done = waiting.get(id);
    waiting.delete(id);
    done?.(Buffer.from(f.subarray(5)));
  };
  // one connection per peer, made again every 50 ms until the peer listens
  const peers: net.Socket[] = [];
  const connect = (i: number, port: number) => {
    const s = net.connect(port, host);
    s.setNoDelay(true);
    s.on('data', framer(onReply));
    s.on('error', () => undefined);
    s.on('close', () => setTimeout(() => connect(i, port), 50));
    peers[i] = s;
  };
  for (const [i, port] of peerPorts.entries()) connect(i, port);

  http
    .createServer((req, res) => {
      const key = (req.url ?? '/').slice('/kv/'.length);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = (status: number, body: unknown) => {
          const text = `${JSON.stringify(body)}\n`;
          res.writeHead(status, ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(Buffer.byteLength(text))]);
          res.end(text);
        };
        if (req.method === 'PUT') {
          const body = Buffer.concat(chunks);
          let acks = 0;
          const ack = () => {
            if (++acks === 2) answer(200, { key, stored: true });
          };
          for (const p of peers) {
            const id = nextId++;
            waiting.set(id, ack);
            p.write(frame(id, PUT, key, body));
          }
          durable(body, () => {
            values.set(key, body);
            ack();
          });
          return;
        }
        // R=2: this member's copy and one other's, in turn
        const id = nextId++;
        waiting.set(id, (theirs) => {
          const v = values.get(key) ?? (theirs.length > 0 ? theirs : undefined);
          if (v === undefined) answer(404, { key, error: 'not_found' });
          else {
            // the stored body, {"value": ...}, is the reply
            res.writeHead(200, ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(v.length)]);
            res.end(v);
          }
        });
        (peers[id % peers.length] as net.Socket).write(frame(id, GET, key, Buffer.alloc(0)));
      });
    })
    .listen(httpPort, host);
}

/** Three floor members on `host` (HTTP ports basePort..+2, frame ports basePort+100..+102). */
export class FloorCluster {
  private constructor(
    readonly procs: ChildProcess[],
    readonly targets: string[],
  ) {}

  static async start(dir: string, host = '127.0.0.1', basePort = 19081, timeoutMs = 15_000): Promise<FloorCluster> {
    const framePorts = [0, 1, 2].map((i) => basePort + 100 + i);
    // the built file, also when this module is loaded from source (the tests)
    const script = path.join(repoRoot(), 'dist', 'scripts', 'lib', 'quorum-floor.js');
    const procs = [0, 1, 2].map((i) =>
      spawn(
        process.execPath,
        [script, host, String(basePort + i), String(framePorts[i]), dir, ...framePorts.filter((_, j) => j !== i).map(String)],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      ),
    );
    const cluster = new FloorCluster(
      procs,
      [0, 1, 2].map((i) => `${host}:${basePort + i}`),
    );
    const deadline = Date.now() + timeoutMs;
    // ready when a write through each member is acknowledged (every member's frame port is up)
    for (const t of cluster.targets) {
      for (;;) {
        try {
          const res = await fetch(`http://${t}/kv/floor-ready`, { method: 'PUT', body: '{"value":1}', signal: AbortSignal.timeout(1000) });
          if (res.ok) break;
        } catch {}
        if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) {
          await cluster.stop();
          throw new Error(`the floor cluster did not answer within ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return cluster;
  }

  get pids(): number[] {
    return this.procs.map((p) => p.pid as number);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
          }),
      ),
    );
  }
}

if (require.main === module) {
  const [host, httpPort, framePort, dir, ...peers] = process.argv.slice(2);
  member(host as string, Number(httpPort), Number(framePort), dir as string, peers.map(Number));
}
