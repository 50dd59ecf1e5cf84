// The internode wire format: frames survive any split of the byte stream, every message type and
// reply round-trips through its codec, and malformed input is refused with a MalformedError, never
// with any other exception.

import fc from 'fast-check';
import { MalformedError, OutBuffer, Reader } from '../../src/core/bytes';
import type { MemberEntry } from '../../src/core/membership';
import { MESSAGE_SPECS, type Message, type MessageType, messageProblem, replyProblem } from '../../src/core/messages';
import type { StoredRecord } from '../../src/core/record';
import {
  decodeReplyBody,
  decodeRequestBody,
  encodeReplyBody,
  encodeRequestBody,
  Kind,
  typeOfCode,
  writeFrame,
} from '../../src/net/protocol';
import { FrameSplitter } from '../../src/net/wire';

const json = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<unknown>;
const version = fc.record({
  wallMs: fc.integer({ min: 0, max: 2 ** 45 }),
  counter: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  nodeId: fc.string({ minLength: 1, maxLength: 20 }),
});
const record: fc.Arbitrary<StoredRecord> = fc.oneof(
  fc.record({ version, value: json.filter((v) => v !== undefined) }) as fc.Arbitrary<StoredRecord>,
  fc.record({
    version,
    value: json.filter((v) => v !== undefined),
    expiresAt: fc.integer({ min: 1, max: 2 ** 45 }),
  }) as fc.Arbitrary<StoredRecord>,
  fc.record({ version, deleted: fc.constant(true as const) }),
);
const key = fc.string({ minLength: 1, maxLength: 60 });
const member: fc.Arbitrary<MemberEntry> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 10 }),
  address: fc.constant('127.0.0.1:8080'),
  generation: fc.integer({ min: 0 }),
  heartbeat: fc.integer({ min: 0 }),
  status: fc.constantFrom('joining' as const, 'normal' as const, 'leaving' as const, 'removed' as const),
});
const token = fc.integer({ min: 0, max: 2 ** 32 - 1 });

/** One arbitrary message of every type, paired with an arbitrary reply to it. */
const exchanges: Record<MessageType, fc.Arbitrary<[Message, object]>> = {
  hello: fc.tuple(
    fc.record({ type: fc.constant('hello' as const), from: member, probe: fc.boolean() }),
    fc.record({ member, members: fc.array(member, { maxLength: 3 }) }),
  ),
  gossip: fc.tuple(
    fc.record({
      type: fc.constant('gossip' as const),
      from: fc.string(),
      digests: fc.array(fc.record({ id: fc.string(), generation: fc.nat(), heartbeat: fc.nat() }), { maxLength: 3 }),
    }),
    fc.record({ entries: fc.array(member, { maxLength: 3 }), want: fc.array(fc.string(), { maxLength: 3 }) }),
  ),
  'gossip-push': fc.tuple(
    fc.record({ type: fc.constant('gossip-push' as const), from: fc.string(), entries: fc.array(member, { maxLength: 3 }) }),
    fc.constant({}),
  ),
  shutdown: fc.tuple(
    fc.record({ type: fc.constant('shutdown' as const), from: fc.record({ id: fc.string(), generation: fc.nat(), heartbeat: fc.nat() }) }),
    fc.constant({}),
  ),
  write: fc.tuple(fc.record({ type: fc.constant('write' as const), key, record }), fc.record({ applied: fc.boolean() })),
  'write-batch': fc.tuple(
    fc.record({ type: fc.constant('write-batch' as const), records: fc.array(fc.tuple(key, record), { maxLength: 4 }) }),
    fc.record({ applied: fc.nat() }),
  ),
  hint: fc.tuple(fc.record({ type: fc.constant('hint' as const), target: fc.string(), key, record }), fc.record({ stored: fc.boolean() })),
  read: fc.tuple(fc.record({ type: fc.constant('read' as const), key }), fc.record({ record: fc.option(record, { nil: null }) })),
  'ae-roots': fc.tuple(
    fc.record({
      type: fc.constant('ae-roots' as const),
      from: fc.string(),
      ring: fc.string(),
      ranges: fc.array(fc.tuple(token, token, fc.string(), fc.nat()), { maxLength: 3 }),
    }),
    fc.record({ same: fc.boolean(), differ: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }) }),
  ),
  'ae-level': fc.tuple(
    fc.record({
      type: fc.constant('ae-level' as const),
      from: fc.string(),
      lo: token,
      hi: token,
      level: fc.integer({ min: 0, max: 4 }),
      parents: fc.array(fc.nat(), { maxLength: 3 }),
      nodes: fc.array(fc.tuple(fc.nat(), fc.string(), fc.nat()), { maxLength: 3 }),
    }),
    fc.record({ differ: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }) }),
  ),
  'ae-keys': fc.tuple(
    fc.record({
      type: fc.constant('ae-keys' as const),
      from: fc.string(),
      lo: token,
      hi: token,
      level: fc.integer({ min: 0, max: 4 }),
      index: fc.nat(),
      keys: fc.array(fc.tuple(key, fc.string(), fc.string()), { maxLength: 3 }),
    }),
    fc.record({ records: fc.array(fc.tuple(key, record), { maxLength: 3 }), want: fc.array(key, { maxLength: 3 }) }),
  ),
  'ring-state': fc.tuple(
    fc.record({ type: fc.constant('ring-state' as const), from: fc.string(), entries: fc.array(member, { maxLength: 3 }) }),
    fc.record({ placement: fc.string(), moving: fc.array(member, { maxLength: 3 }) }),
  ),
  'stream-range': fc.tuple(
    fc.record({
      type: fc.constant('stream-range' as const),
      lo: token,
      hi: token,
      after: token,
      maxRecords: fc.integer({ min: 1, max: 100 }),
      maxBytes: fc.integer({ min: 1 }),
    }),
    fc.record({ records: fc.array(fc.tuple(key, record), { maxLength: 3 }), next: token }),
  ),
};

/** What JSON makes of a value (-0 becomes 0, undefined fields vanish): the codecs promise no more than JSON. */
const viaJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function encodeRequest(id: number, msg: Message): Buffer {
  const out = new OutBuffer(16);
  writeFrame(out, Kind.request, id, MESSAGE_SPECS[msg.type].code, (o) => encodeRequestBody(o, msg));
  return out.take();
}

/** Decodes one request frame's body (as the server does once the splitter has the frame). */
function decodeRequest(frame: Buffer): { id: number; msg: Message } {
  const r = new Reader(frame);
  expect(r.u8()).toBe(Kind.request);
  const id = r.u32();
  return { id, msg: decodeRequestBody(typeOfCode(r.u8()), r) };
}

describe('internode frames', () => {
  test.each(Object.keys(exchanges) as MessageType[])('a %s and its reply round-trip and pass their declared shapes', (type) => {
    fc.assert(
      fc.property(exchanges[type], fc.nat({ max: 2 ** 32 - 1 }), ([msg, reply], id) => {
        const splitter = new FrameSplitter(1 << 24);
        const frames = splitter.push(encodeRequest(id, msg));
        expect(frames).toHaveLength(1);
        const decoded = decodeRequest(frames[0] as Buffer);
        expect(decoded.id).toBe(id);
        expect(decoded.msg).toEqual(viaJson(msg));
        expect(messageProblem(decoded.msg)).toBeUndefined();

        const out = new OutBuffer(16);
        encodeReplyBody(out, type, reply);
        const back = decodeReplyBody(type, new Reader(out.take()));
        expect(back).toEqual(viaJson(reply));
        expect(replyProblem(type, back)).toBeUndefined();
      }),
      { numRuns: 60 },
    );
  });

  test('any byte stream, split at any boundaries, decodes to the same frames', () => {
    const messages = fc.array(
      fc.oneof(
        exchanges.write.map(([m]) => m),
        exchanges.read.map(([m]) => m),
        exchanges['write-batch'].map(([m]) => m),
        exchanges.hello.map(([m]) => m),
      ),
      { minLength: 1, maxLength: 12 },
    );
    fc.assert(
      fc.property(messages, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map((m, i) => encodeRequest(i + 1, m)));
        const splitter = new FrameSplitter(1 << 24);
        const got: Array<{ id: number; msg: Message }> = [];
        let at = 0;
        let c = 0;
        while (at < stream.length) {
          const size = cuts[c++ % cuts.length] as number;
          for (const f of splitter.push(stream.subarray(at, at + size))) got.push(decodeRequest(f));
          at += size;
        }
        expect(got.map((g) => g.id)).toEqual(msgs.map((_, i) => i + 1));
        expect(got.map((g) => g.msg)).toEqual(msgs.map(viaJson));
        expect(splitter.pendingBytes).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  test('a frame longer than the limit is refused before any of it is buffered', () => {
    const splitter = new FrameSplitter(1000);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1001);
    expect(() => splitter.push(header)).toThrow(MalformedError);
    expect(() => new FrameSplitter(1000).push(Buffer.from([0, 0, 3, 0xe8, 1]))).not.toThrow(); // exactly 1000: waits for the rest
  });

  test('a truncated frame waits for its rest; a truncated body is refused', () => {
    const whole = encodeRequest(7, { type: 'write', key: 'k', record: { version: { wallMs: 1, counter: 0, nodeId: 'n1' }, value: 'v' } });
    const splitter = new FrameSplitter(1 << 20);
    expect(splitter.push(whole.subarray(0, whole.length - 1))).toEqual([]);
    expect(splitter.pendingBytes).toBe(whole.length - 1);
    // a frame whose length says less than its body needs: the decoder runs out of bytes
    for (let cut = 6; cut < whole.length - 4; cut++) {
      const short = Buffer.from(whole.subarray(4, 4 + cut));
      expect(() => decodeRequest(short)).toThrow(MalformedError);
    }
  });

  test('random bytes are frames or MalformedErrors, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 1, max: 255 }), (bytes, code) => {
        const body = Buffer.from(bytes);
        const frame = Buffer.concat([Buffer.from([Kind.request, 0, 0, 0, 1, code]), body]);
        try {
          const { msg } = decodeRequest(frame);
          // decoded: it is an object of a known type, and the shape check says yes or what is wrong
          const problem = messageProblem(msg);
          expect(problem === undefined || typeof problem === 'string').toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('the shape check names the first field that is wrong', () => {
    expect(messageProblem({ type: 'write-batch', records: [1] })).toBe('write-batch.records[0]: must be an array of 2');
    expect(messageProblem({ type: 'read', key: 5 })).toBe('read.key: must be a string');
    expect(messageProblem({ type: 'ring-state', from: 'n1', entries: [{ id: 'x' }] })).toMatch(
      /^ring-state\.entries\[0\]: must be a member entry/,
    );
    expect(messageProblem({ type: 'nope' })).toBe('unknown message type "nope"');
    expect(replyProblem('read', { record: { version: 1 } })).toMatch(/^read reply\.record: must be a record/);
  });

  test('a body that would not encode leaves nothing behind in the output', () => {
    const out = new OutBuffer(16);
    writeFrame(out, Kind.request, 1, MESSAGE_SPECS.read.code, (o) => encodeRequestBody(o, { type: 'read', key: 'a' }));
    const before = out.length;
    const deep: unknown[] = [];
    let cur = deep;
    for (let i = 0; i < 20_000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    const bad = { type: 'write', key: 'k', record: { version: { wallMs: 1, counter: 0, nodeId: 'n' }, value: deep } } as unknown as Message;
    expect(() => writeFrame(out, Kind.request, 2, MESSAGE_SPECS.write.code, (o) => encodeRequestBody(o, bad))).toThrow(RangeError);
    expect(out.length).toBe(before);
  });
});
