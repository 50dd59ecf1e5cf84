// Campaign B of `npm run fuzz`: hostile connections to the nodes' internode port. Each case is a
// plan built from its own dice (see ./fuzz-random.ts): steps to send (random bytes, frames before
// and after the handshake, truncated, oversized, unknown codes, fields of the wrong types) and what
// the node owes each (a wrong proof never gets READY, a request before the handshake never gets an
// answer, a message its declared shape refuses gets an error frame, never a reply). Building is
// pure; `runPeerCase` carries a plan out over one TCP connection.
//
// The framing and the handshake are src/net/protocol.ts's, used from there. A cluster started
// without a token proves the empty string.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { OutBuffer, Reader } from '../../src/core/bytes';
import { DEFAULTS, maxRequestFrameBytes } from '../../src/core/defaults';
import { MESSAGE_SPECS, type Message, type MessageType, messageProblem } from '../../src/core/messages';
import {
  decodeReplyBody,
  decodeRequestBody,
  ErrorCode,
  encodeRequestBody,
  Kind,
  MAGIC,
  NONCE_BYTES,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  proof,
  typeOfCode,
  writeFrame,
} from '../../src/net/protocol';
import { FrameSplitter } from '../../src/net/wire';
import { Dice, jsonValue, unicodeText } from './fuzz-random';

export const FRAME_CATEGORIES = [
  'random-bytes',
  'http-on-peer-port',
  'magic-then-garbage',
  'bad-handshake',
  'random-frames',
  'unknown-code',
  'truncated',
  'oversized',
  'wrong-types',
  'big-fields',
] as const;
export type FrameCategory = (typeof FRAME_CATEGORIES)[number];

/** What the node owes the steps before. */
type Expectation =
  | { ready: true } // a correct handshake is answered with READY
  | { notReady: true } // a wrong proof: REFUSED or a close, never READY
  | { noAnswer: true } // a request before the handshake completed: never answered
  | { refusals: number[] } // messages whose shape is wrong: an error frame each, never a reply
  | { serves: true } // a read of a missing key on the same connection is answered (record null)
  | { closes: number } // the node is expected to close within this many ms (noted, not judged)
  | { wrongPort: true }; // an HTTP request: told where the API is (noted, not judged)

export type Step =
  | { send: Buffer; frames: number }
  | { hello: true } // magic and a correct hello; the challenge's nonce is kept for `auth`
  | { auth: 'right' | 'wrong-token' | 'random' | 'swapped' | 'short' | 'long' }
  | { pause: number }
  | { expect: Expectation };

export interface PeerCase {
  index: number;
  category: FrameCategory;
  node: number;
  what: string;
  steps: Step[];
  /** Hostile frames (or chunks of bytes) the steps send. */
  frames: number;
}

export interface PeerOutcome {
  violations: string[];
  /** What the node did, for the summary's counts (closed, REFUSED, error replies, ...). */
  notes: string[];
}

/** The id of the read a `serves` expectation sends: no other frame of the fuzzer uses it. */
const PROBE_ID = 0x7fffffff;

/** The largest frame a node takes after the handshake, with the default --max-value-bytes. */
const MAX_FRAME_BYTES = maxRequestFrameBytes(DEFAULTS.maxValueBytes);

/** Case `index` of the run seeded `seed`, against a cluster of `nodeCount` nodes. */
export function peerCase(seed: number, index: number, nodeCount: number): PeerCase {
  const d = Dice.forCase(seed, 'internode', index);
  const category = d.pick(FRAME_CATEGORIES);
  const { what, steps } = PLANS[category](d, seed);
  const frames = steps.reduce((n, s) => n + ('send' in s ? s.frames : 'auth' in s && s.auth !== 'right' ? 1 : 0), 0);
  return { index, category, node: index % nodeCount, what, steps, frames };
}

// ---- frames -----------------------------------------------------------------------------------------

/** A frame header that promises `length` bytes, and `body` (as many as we choose to send). */
function header(length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(length);
  return Buffer.concat([head, body]);
}

/** `u32 length ‖ bytes`. */
function frame(bytes: Buffer): Buffer {
  return header(bytes.length, bytes);
}

function helloFrame(nonce: Buffer, min = PROTOCOL_VERSION, max = PROTOCOL_VERSION, id = 'fz-peer'): Buffer {
  const out = new OutBuffer(64);
  out.u8(Kind.hello);
  out.u16(min);
  out.u16(max);
  out.bytes(nonce);
  out.str(id, 1);
  return frame(out.take());
}

function messageFrame(kind: number, id: number, code: number, body: Buffer): Buffer {
  const out = new OutBuffer(body.length + 16);
  writeFrame(out, kind, id, code, (o) => o.bytes(body));
  return out.take();
}

function requestBody(msg: Message): Buffer {
  const out = new OutBuffer(256);
  encodeRequestBody(out, msg);
  return out.take();
}

function readProbe(seed: number): Buffer {
  return messageFrame(Kind.request, PROBE_ID, codeOf('read'), requestBody({ type: 'read', key: `fz-${seed}-internode-probe` }));
}

/** What the node makes of a request body: undefined if it does not decode; else its shape problem, or '' when well formed. */
function verdictOf(code: number, body: Buffer): string | undefined {
  try {
    return messageProblem(decodeRequestBody(typeOfCode(code), new Reader(body))) ?? '';
  } catch {
    return undefined;
  }
}

// ---- messages with fields of the wrong type ---------------------------------------------------------

const MEMBER = { id: 'fz-peer', address: '127.40.255.1:7000', generation: 1, heartbeat: 0, status: 'normal' };
const RECORD = { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, value: 'fz' };

/** A well-formed message of every type that travels as JSON: one field of it is then spoiled. */
const TEMPLATES: Partial<Record<MessageType, object>> = {
  hello: { from: MEMBER, probe: true },
  gossip: { from: 'fz-peer', digests: [{ id: 'fz-peer', generation: 1, heartbeat: 0 }] },
  'gossip-push': { from: 'fz-peer', entries: [MEMBER] },
  shutdown: { from: { id: 'fz-peer', generation: 1, heartbeat: 0 } },
  'write-batch': { records: [['fz-key', RECORD]] },
  hint: { target: 'fz-peer', key: 'fz-key', record: RECORD },
  'ae-roots': { from: 'fz-peer', ring: 'x', combined: '0' },
  'ae-level': { from: 'fz-peer', lo: 0, hi: 1, level: 0, parents: [0], nodes: [[0, 'h', 1]] },
  'ae-keys': { from: 'fz-peer', lo: 0, hi: 1, level: 0, index: 0, keys: [['fz-key', 'v', 'd']] },
  'ring-state': { from: 'fz-peer', entries: [MEMBER] },
  'stream-range': { lo: 0, hi: 1, maxRecords: 1, maxBytes: 1 },
};

const WRONG_VALUES: readonly unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 53 + 2,
  -0.5,
  1e308,
  '',
  'x',
  'x'.repeat(300),
  [],
  [1],
  {},
  { a: 1 },
];

/** Every path to a field or item inside `v` (so one can be spoiled). */
function pathsIn(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (typeof v !== 'object' || v === null) return [];
  const keys: Array<string | number> = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => [[...at, k], ...pathsIn((v as Record<string | number, unknown>)[k], [...at, k])]);
}

/** `msg` with the field at `path` replaced by `value` (or removed, for `undefined`). */
function spoiled(msg: object, path: Array<string | number>, value: unknown): object {
  const copy = structuredClone(msg) as Record<string | number, unknown>;
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === undefined && !Array.isArray(parent)) delete parent[last];
  else parent[last] = value;
  return copy;
}

/** A JSON-coded message with one field spoiled (the dice may spoil it into another valid value: the caller checks). */
function spoiledJsonMessage(d: Dice): { type: MessageType; body: Buffer } {
  const type = d.pick(Object.keys(TEMPLATES) as MessageType[]);
  const template = TEMPLATES[type] as object;
  const path = d.pick(pathsIn(template));
  const value = d.chance(0.15) ? undefined : d.pick(WRONG_VALUES);
  return { type, body: requestBody({ ...spoiled(template, path, value), type } as Message) };
}

/** A replica write (hand-coded on the wire) whose record breaks its shape: a version or expiry no clock makes. */
function spoiledWrite(d: Dice): { type: MessageType; body: Buffer } {
  const badWall = d.pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, 0.5, 2 ** 53 + 2]);
  const badExpiry = d.pick([0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 60]);
  const record = d.pick([
    { version: { wallMs: badWall, counter: 0, nodeId: 'fz' }, value: 1 },
    { version: { wallMs: 1, counter: 0, nodeId: '' }, value: 1 },
    { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, value: 1, expiresAt: badExpiry },
    { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, deleted: true, expiresAt: 5 },
  ]);
  return { type: 'write', body: requestBody({ type: 'write', key: 'fz-key', record } as unknown as Message) };
}

/** A request frame its node must decode and then refuse by shape: an error frame, never a reply. */
function wrongTypedFrame(d: Dice, id: number): Buffer {
  for (let attempt = 0; attempt < 20; attempt++) {
    const m = d.chance(0.25) ? spoiledWrite(d) : spoiledJsonMessage(d);
    const code = codeOf(m.type);
    if (verdictOf(code, m.body)) return messageFrame(Kind.request, id, code, m.body);
  }
  return messageFrame(Kind.request, id, codeOf('gossip'), requestBody({ type: 'gossip', from: 5, digests: 'x' } as unknown as Message));
}

function codeOf(type: MessageType): number {
  return MESSAGE_SPECS[type].code;
}

/**
 * A body for message `code` that is random bytes or random JSON. A body the node would take as a
 * well-formed message is replaced by garbage (a valid hello or gossip would really change the
 * cluster); a read is harmless and kept.
 */
function randomBody(d: Dice, code: number): Buffer {
  const body = d.chance(0.5)
    ? d.bytes(d.int(0, 2000))
    : requestBody({ ...(d.chance(0.5) ? { from: jsonValue(d, 2) } : {}), x: jsonValue(d, 4), type: 'gossip' } as unknown as Message);
  const verdict = verdictOf(code, body);
  return verdict === '' && code !== codeOf('read') ? Buffer.from([0xff]) : body;
}

// ---- the plans --------------------------------------------------------------------------------------

type Plan = (d: Dice, seed: number) => { what: string; steps: Step[] };

const HANDSHAKE: Step[] = [{ hello: true }, { auth: 'right' }, { expect: { ready: true } }];

const PLANS: Record<FrameCategory, Plan> = {
  'random-bytes': (d) => {
    const prefix = d.pick(['', 'Q', 'QK', 'QKV', 'QKVX', 'qkvn']);
    const first = d.bytes(d.int(1, 4096));
    if (prefix === '' && first[0] === MAGIC[0]) first[0] = 0;
    const steps: Step[] = [{ send: Buffer.concat([Buffer.from(prefix), first]), frames: 1 }];
    if (d.chance(0.3)) steps.push({ send: d.bytes(d.int(1, 512)), frames: 1 });
    return { what: `random bytes${prefix ? ` after "${prefix}"` : ''}`, steps: [...steps, { expect: { closes: 200 } }] };
  },

  'http-on-peer-port': (d) => {
    const line = `${d.pick(['GET', 'PUT', 'POST', 'DELETE'])} /${d.pick(['kv/x', 'health', 'internal/read', ''])} HTTP/1.1`;
    return {
      what: `an HTTP request (${line})`,
      steps: [{ send: Buffer.from(`${line}\r\nHost: x\r\n\r\n`), frames: 1 }, { expect: { wrongPort: true } }],
    };
  },

  'magic-then-garbage': (d) => {
    const frames = Array.from({ length: d.int(1, 5) }, () => {
      const length = d.chance(0.1) ? d.int(1025, 70_000) : d.int(0, 1024);
      return header(length, d.bytes(Math.min(length, d.int(0, 1024))));
    });
    return {
      what: `the magic, then ${frames.length} random frame(s)`,
      steps: [{ send: Buffer.concat([MAGIC, ...frames]), frames: frames.length }, { expect: { closes: 300 } }],
    };
  },

  'bad-handshake': (d, seed) => badHandshake(d, seed),

  'random-frames': (d) => {
    const frames = Array.from({ length: d.int(1, 5) }, (_, i) => {
      const kind = d.weighted([
        [7, Kind.request],
        [3, d.pick([Kind.reply, Kind.error, Kind.hello, Kind.challenge, Kind.auth, Kind.ready, Kind.refused, d.int(0, 255)])],
      ]);
      const code = d.chance(0.8) ? d.int(1, 13) : d.int(0, 255);
      return messageFrame(kind, d.chance(0.5) ? i + 1 : d.int(0, 2 ** 32 - 1), code, randomBody(d, code));
    });
    return {
      what: `${frames.length} random frame(s) after the handshake`,
      steps: [...HANDSHAKE, { send: Buffer.concat(frames), frames: frames.length }, { expect: { closes: 200 } }],
    };
  },

  'unknown-code': (d) => {
    const codes = Array.from({ length: d.int(1, 3) }, () => d.pick([0, d.int(14, 255)]));
    const frames = codes.map((code, i) => messageFrame(Kind.request, i + 1, code, d.bytes(d.int(0, 100))));
    return {
      what: `request(s) with unknown message code(s) ${codes.join(', ')}`,
      steps: [...HANDSHAKE, { send: Buffer.concat(frames), frames: frames.length }, { expect: { closes: 300 } }],
    };
  },

  truncated: (d, seed) => truncated(d, seed),

  oversized: (d) => {
    if (d.chance(0.3)) {
      const length = d.pick([1025, d.int(1026, 65_535), 2 ** 31, 2 ** 32 - 1]);
      return {
        what: `a frame of ${length} bytes before the handshake`,
        steps: [{ send: Buffer.concat([MAGIC, header(length, d.bytes(d.int(0, 100)))]), frames: 1 }, { expect: { closes: 300 } }],
      };
    }
    const length = d.pick([MAX_FRAME_BYTES + 1, 2 ** 31, 2 ** 32 - 1, 300 * 2 ** 20]);
    return {
      what: `a frame of ${length} bytes after the handshake`,
      steps: [...HANDSHAKE, { send: header(length, d.bytes(d.int(0, 4096))), frames: 1 }, { expect: { closes: 300 } }],
    };
  },

  'wrong-types': (d, seed) => {
    const ids = Array.from({ length: d.int(3, 20) }, (_, i) => i + 1);
    const frames = ids.map((id) => wrongTypedFrame(d, id));
    return {
      what: `${ids.length} message(s) with a field of the wrong type`,
      steps: [
        ...HANDSHAKE,
        { send: Buffer.concat(frames), frames: frames.length },
        { expect: { refusals: ids } },
        { send: readProbe(seed), frames: 0 },
        { expect: { serves: true } },
      ],
    };
  },

  'big-fields': (d, seed) => {
    const bigKey = () => `fz-${seed}-big-${'k'.repeat(d.int(1025, 65_000))}`;
    const frames = Array.from({ length: d.int(1, 3) }, (_, i) => {
      const msg: Message = d.pick<() => Message>([
        () => ({ type: 'read', key: bigKey() }),
        () => ({ type: 'write', key: bigKey(), record: { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, value: 'fz' } }),
        () => ({ type: 'gossip', from: 'f'.repeat(d.int(257, 5000)), digests: [] }),
        () => ({ type: 'read', key: unicodeText(d, d.int(1, 16_000)) }), // at most 4 bytes a character: within a u16 length
      ])();
      return messageFrame(Kind.request, i + 1, codeOf(msg.type), requestBody(msg));
    });
    return {
      what: `${frames.length} message(s) with over-long keys or ids`,
      steps: [
        ...HANDSHAKE,
        { send: Buffer.concat(frames), frames: frames.length },
        { pause: 100 },
        { send: readProbe(seed), frames: 0 },
        { expect: { serves: true } },
      ],
    };
  },
};

function badHandshake(d: Dice, seed: number): { what: string; steps: Step[] } {
  const nonce = d.bytes(NONCE_BYTES);
  const hello = helloFrame(nonce);
  const closes: Step = { expect: { closes: 300 } };
  return d.weighted<() => { what: string; steps: Step[] }>([
    [
      2,
      () => {
        const keep = d.int(1, hello.length - 5);
        const body = hello.subarray(4, 4 + keep);
        return { what: `a hello cut to ${keep} bytes`, steps: [{ send: Buffer.concat([MAGIC, frame(body)]), frames: 1 }, closes] };
      },
    ],
    [
      1,
      () => ({
        what: 'a hello with trailing bytes',
        steps: [{ send: Buffer.concat([MAGIC, frame(Buffer.concat([hello.subarray(4), d.bytes(d.int(1, 50))]))]), frames: 1 }, closes],
      }),
    ],
    [
      2,
      () => {
        const [min, max] = d.pick([
          [0, 0],
          [5, 2],
          [2, 9],
          [0xffff, 0xffff],
          [0, 0xffff],
        ]) as [number, number];
        return {
          what: `a hello for versions ${min}..${max}`,
          steps: [{ send: Buffer.concat([MAGIC, helloFrame(nonce, min, max)]), frames: 1 }, closes],
        };
      },
    ],
    [
      2,
      () => {
        const kind = d.pick([Kind.auth, Kind.request, Kind.ready, Kind.refused, Kind.challenge, d.int(0, 255)]);
        return {
          what: `frame kind ${kind} instead of a hello`,
          steps: [{ send: Buffer.concat([MAGIC, frame(Buffer.concat([Buffer.from([kind]), d.bytes(d.int(0, 60))]))]), frames: 1 }, closes],
        };
      },
    ],
    [
      4,
      () => {
        const variant = d.pick(['wrong-token', 'random', 'swapped'] as const);
        return { what: `an auth with a ${variant} proof`, steps: [{ hello: true }, { auth: variant }, { expect: { notReady: true } }] };
      },
    ],
    [
      2,
      () => {
        const variant = d.pick(['short', 'long'] as const);
        return { what: `an auth with a ${variant} proof`, steps: [{ hello: true }, { auth: variant }, { expect: { notReady: true } }] };
      },
    ],
    [
      3,
      () => ({
        what: 'a request before the auth',
        steps: [{ hello: true }, { send: readProbe(seed), frames: 1 }, { expect: { noAnswer: true } }],
      }),
    ],
    [
      1,
      () => {
        const out = new OutBuffer(64);
        out.u8(Kind.refused);
        out.str(unicodeText(d, d.int(0, 40)), 2);
        return { what: 'a REFUSED from the client', steps: [{ hello: true }, { send: frame(out.take()), frames: 1 }, closes] };
      },
    ],
    [1, () => ({ what: 'a second hello', steps: [{ hello: true }, { send: helloFrame(d.bytes(NONCE_BYTES)), frames: 1 }, closes] })],
    [
      1,
      () => {
        const body = Buffer.from(hello.subarray(4));
        body[body.length - 'fz-peer'.length - 1] = 200; // the id's length byte: more than there is
        return { what: 'a hello whose id runs past its end', steps: [{ send: Buffer.concat([MAGIC, frame(body)]), frames: 1 }, closes] };
      },
    ],
  ])();
}

function truncated(d: Dice, seed: number): { what: string; steps: Step[] } {
  const goAway: Step[] = [{ pause: d.int(10, 150) }];
  return d.weighted<() => { what: string; steps: Step[] }>([
    [
      3,
      () => {
        const length = d.int(10, 5000);
        const sent = d.int(0, length - 1);
        return {
          what: `a frame promising ${length} bytes, ${sent} sent, then gone`,
          steps: [...HANDSHAKE, { send: header(length, d.bytes(sent)), frames: 1 }, ...goAway],
        };
      },
    ],
    [
      3,
      () => {
        const msg: Message = d.pick<Message>([
          { type: 'read', key: `fz-${seed}-cut` },
          { type: 'write', key: `fz-${seed}-cut`, record: { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, value: { a: [1, 2] } } },
          { type: 'gossip', from: 'fz-peer', digests: [] },
          { type: 'stream-range', lo: 0, hi: 1, maxRecords: 1, maxBytes: 1 },
        ]);
        const body = requestBody(msg);
        const keep = d.int(0, body.length - 1);
        return {
          what: `a ${msg.type} whose body ends after ${keep} of ${body.length} bytes`,
          steps: [
            ...HANDSHAKE,
            { send: messageFrame(Kind.request, 1, codeOf(msg.type), body.subarray(0, keep)), frames: 1 },
            { expect: { closes: 300 } },
          ],
        };
      },
    ],
    [
      2,
      () => {
        const body = requestBody({ type: 'write', key: 'fz-key', record: { version: { wallMs: 1, counter: 0, nodeId: 'fz' }, value: 1 } });
        const bad = Buffer.from(body);
        const flagsAt = 2 + 'fz-key'.length;
        if (d.chance(0.5))
          bad[flagsAt] = d.int(4, 255); // record flags no version defines
        else bad.write('{', bad.length - 1, 'latin1'); // the value is no longer JSON
        return {
          what: 'a write whose record does not decode',
          steps: [...HANDSHAKE, { send: messageFrame(Kind.request, 1, codeOf('write'), bad), frames: 1 }, { expect: { closes: 300 } }],
        };
      },
    ],
    [1, () => ({ what: 'part of a frame header, then gone', steps: [...HANDSHAKE, { send: d.bytes(d.int(1, 3)), frames: 1 }, ...goAway] })],
    [
      2,
      () => {
        const hello = Buffer.concat([MAGIC, helloFrame(d.bytes(NONCE_BYTES))]);
        const cut = d.int(1, hello.length - 1);
        return {
          what: `a slow handshake: ${cut} of ${hello.length} bytes in two pieces, then gone`,
          steps: [
            { send: hello.subarray(0, Math.ceil(cut / 2)), frames: 1 },
            { pause: d.int(10, 100) },
            { send: hello.subarray(Math.ceil(cut / 2), cut), frames: 0 },
            ...goAway,
          ],
        };
      },
    ],
  ])();
}

// ---- carrying a plan out ----------------------------------------------------------------------------

/** One client connection: the frames the node sends, as they arrive, and whether it closed. */
class PeerWire {
  private readonly splitter = new FrameSplitter(2 ** 31);
  private readonly frames: Buffer[] = [];
  private notify: (() => void) | undefined;
  /** Every byte received (an HTTP reply to a stranger is not framed). */
  received = Buffer.alloc(0);
  closed = false;
  unframed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      if (!this.unframed) {
        try {
          this.frames.push(...this.splitter.push(chunk));
        } catch {
          this.unframed = true;
        }
      }
      this.notify?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.notify?.();
    });
  }

  static open(host: string, port: number, timeoutMs: number): Promise<PeerWire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new PeerWire(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  send(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** The next frame the node sent, 'closed' once it closed, or 'timeout'. */
  async next(timeoutMs: number): Promise<Buffer | 'closed' | 'timeout'> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f !== undefined) return f;
      if (this.closed) return 'closed';
      const left = deadline - performance.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.notify = undefined;
    }
  }

  /** Waits until the node closes, at most `timeoutMs`; true if it did. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.closed && performance.now() < deadline) {
      if ((await this.next(deadline - performance.now())) === 'timeout') break;
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** How long the node gets to answer anything it owes. */
const ANSWER_MS = 5_000;

interface Handshake {
  ours: Buffer;
  theirs: Buffer;
}

/** Carries out `c` against host:port; never throws, never runs past its own deadlines. */
export async function runPeerCase(c: PeerCase, host: string, port: number): Promise<PeerOutcome> {
  const out: PeerOutcome = { violations: [], notes: [] };
  let wire: PeerWire;
  try {
    wire = await PeerWire.open(host, port, ANSWER_MS);
  } catch (err) {
    out.violations.push(`could not connect: ${(err as Error).message}`);
    return out;
  }
  const nonces: { value?: Handshake } = {};
  try {
    for (const step of c.steps) {
      if (!(await runStep(step, wire, nonces, out))) break;
    }
    out.notes.push(wire.closed ? 'closed by the node' : 'left open: closed by the fuzzer');
  } finally {
    wire.destroy();
  }
  return out;
}

/** One step; false when the plan cannot go on (the node closed, or a handshake failed). */
async function runStep(step: Step, wire: PeerWire, nonces: { value?: Handshake }, out: PeerOutcome): Promise<boolean> {
  if ('send' in step) {
    wire.send(step.send);
    return true;
  }
  if ('pause' in step) {
    await new Promise((r) => setTimeout(r, step.pause));
    return true;
  }
  if ('hello' in step) {
    const ours = randomBytes(NONCE_BYTES);
    wire.send(Buffer.concat([MAGIC, helloFrame(ours)]));
    const theirs = await challengeNonce(wire);
    if (typeof theirs === 'string') {
      out.violations.push(`a correct hello got no challenge: ${theirs}`);
      return false;
    }
    nonces.value = { ours, theirs };
    return true;
  }
  if ('auth' in step) {
    wire.send(authFrame(step.auth, nonces.value as Handshake));
    return true;
  }
  return judge(step.expect, wire, out);
}

async function challengeNonce(wire: PeerWire): Promise<Buffer | string> {
  const f = await wire.next(ANSWER_MS);
  if (typeof f === 'string') return f;
  const r = new Reader(f);
  if (r.u8() !== Kind.challenge) return `frame kind ${f[0]} instead of CHALLENGE`;
  if (r.u8() !== 0) return 'the challenge refused protocol version 1';
  r.u16();
  r.u16();
  r.u16();
  return Buffer.from(r.bytes(NONCE_BYTES));
}

function authFrame(variant: Extract<Step, { auth: unknown }>['auth'], n: Handshake): Buffer {
  const proofBytes = {
    right: () => proof('', 'client', n.theirs, n.ours),
    'wrong-token': () => proof('fz-not-the-token', 'client', n.theirs, n.ours),
    random: () => randomBytes(PROOF_BYTES),
    swapped: () => proof('', 'server', n.ours, n.theirs), // the server's own proof sent back
    short: () => proof('', 'client', n.theirs, n.ours).subarray(0, PROOF_BYTES - 1),
    long: () => Buffer.concat([proof('', 'client', n.theirs, n.ours), Buffer.from([0])]),
  }[variant]();
  return frame(Buffer.concat([Buffer.from([Kind.auth]), proofBytes]));
}

async function judge(e: Expectation, wire: PeerWire, out: PeerOutcome): Promise<boolean> {
  if ('ready' in e) {
    const f = await wire.next(ANSWER_MS);
    if (typeof f !== 'string' && f[0] === Kind.ready) return true;
    out.violations.push(`a correct handshake did not end in READY (${typeof f === 'string' ? f : `frame kind ${f[0]}`})`);
    return false;
  }
  if ('notReady' in e) {
    const f = await wire.next(ANSWER_MS);
    if (typeof f !== 'string' && f[0] === Kind.ready) out.violations.push('a wrong proof was answered with READY');
    else out.notes.push(typeof f === 'string' ? `wrong proof: ${f}` : `wrong proof: frame kind ${f[0]}`);
    return false;
  }
  if ('noAnswer' in e) {
    const f = await wire.next(300);
    if (typeof f !== 'string' && (f[0] === Kind.reply || f[0] === Kind.error)) {
      out.violations.push(`a request sent before the auth was answered (frame kind ${f[0]})`);
    }
    return false;
  }
  if ('refusals' in e) return judgeRefusals(e.refusals, wire, out);
  if ('serves' in e) return judgeServes(wire, out);
  if ('wrongPort' in e) {
    await wire.waitClosed(ANSWER_MS);
    out.notes.push(
      /^HTTP\/1\.1 400 .*"code":"wrong_port"/s.test(wire.received.toString('latin1'))
        ? 'told the API port'
        : 'HTTP client not told the API port',
    );
    return false;
  }
  await wire.waitClosed(e.closes);
  return false;
}

/** Each request id gets an error frame saying the message is malformed; a reply would mean it was handled. */
async function judgeRefusals(ids: number[], wire: PeerWire, out: PeerOutcome): Promise<boolean> {
  const waiting = new Set(ids);
  const deadline = performance.now() + ANSWER_MS;
  while (waiting.size > 0) {
    const f = await wire.next(deadline - performance.now());
    if (typeof f === 'string') {
      out.notes.push(`${waiting.size} wrong-typed message(s) unanswered (${f})`);
      return !wire.closed;
    }
    const r = new Reader(f);
    const kind = r.u8();
    const id = r.u32();
    waiting.delete(id);
    if (kind === Kind.reply) out.violations.push(`request ${id}, whose shape is wrong, got a reply: it was handled`);
    else if (kind === Kind.error) {
      r.u8(); // message code
      const code = r.u8();
      out.notes.push(code === ErrorCode.badMessage ? 'refused as malformed' : `refused with error code ${code}`);
    }
  }
  return true;
}

async function judgeServes(wire: PeerWire, out: PeerOutcome): Promise<boolean> {
  const deadline = performance.now() + ANSWER_MS;
  for (;;) {
    const f = await wire.next(deadline - performance.now());
    if (typeof f === 'string') {
      out.violations.push(`the connection stopped serving: a read after the hostile frames got no reply (${f})`);
      return false;
    }
    const r = new Reader(f);
    const kind = r.u8();
    if (r.u32() !== PROBE_ID) continue; // a late answer to an earlier frame
    r.u8();
    let reply: { record?: unknown } | undefined;
    try {
      reply = kind === Kind.reply ? (decodeReplyBody('read', r) as { record: unknown }) : undefined;
    } catch (err) {
      out.violations.push(`a read after the hostile frames got a reply that does not decode: ${(err as Error).message}`);
      return false;
    }
    if (reply?.record !== null)
      out.violations.push(`a read of a missing key after the hostile frames got frame kind ${kind}: ${JSON.stringify(reply)}`);
    else out.notes.push('served a read afterwards');
    return true;
  }
}
