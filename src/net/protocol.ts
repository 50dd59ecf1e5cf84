// The internode protocol on the wire: what a connection starts with, the handshake, the frames,
// and how each message type's body is encoded. Message types, their codes and shapes are declared
// once, in core/messages.ts; this file only says how they become bytes.
//
// A connection (client → server):
//
//   client: "QKVN"                                  4 bytes of magic, not framed: anything else
//                                                    (an HTTP request, a stray scanner) is refused
//   client: HELLO     u16 min version, u16 max version, 16-byte nonce, node id
//   server: CHALLENGE status (0 ok, 1 no common version), chosen version, server min and max,
//                     16-byte nonce, HMAC-SHA256(token, "quorumkv-server" ‖ client nonce ‖ server nonce), node id
//   client: AUTH      HMAC-SHA256(token, "quorumkv-client" ‖ server nonce ‖ client nonce)
//   server: READY, or REFUSED with the reason, and closes
//
// Each side proves it holds the cluster token without sending it (memberlist's ProtocolVersion
// exchange, with the token as an HMAC key instead of a header on every request). A node may hold
// two tokens while the cluster moves from one to another (`current,next`): it proves the first and
// accepts a proof made with either, so members holding A, `A,B`, `B,A` and B meet wherever their
// lists overlap (a rotation A -> B is two rolling restarts: every node `A,B`, then every node
// `B,A`; then B alone). After READY,
// frames in both directions: `u32 length ‖ u8 kind ‖ u32 request id ‖ u8 message code ‖ body`.
// Requests and replies are matched by id, so any number share one connection.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { MalformedError, type OutBuffer, type Reader } from '../core/bytes';
import type { Version } from '../core/hlc';
import { MESSAGE_SPECS, type Message, type MessageType } from '../core/messages';
import type { StoredRecord } from '../core/record';

export const MAGIC = Buffer.from('QKVN', 'ascii');

/** Protocol versions this build speaks. A peer with no version in common is refused, and says so. */
export const PROTOCOL_VERSION = 1;
export const MIN_PROTOCOL_VERSION = 1;

export const NONCE_BYTES = 16;
export const PROOF_BYTES = 32;

/** Frame kinds. Handshake frames are only valid before READY, message frames only after. */
export const Kind = {
  hello: 0x10,
  challenge: 0x11,
  auth: 0x12,
  ready: 0x13,
  refused: 0x14,
  request: 0x01,
  reply: 0x02,
  error: 0x03,
} as const;

/** Why a request failed on the peer (an error frame's first byte). */
export const ErrorCode = { badMessage: 1, internal: 2, unavailable: 3 } as const;

/** kind, request id, message code. */
export const MESSAGE_HEADER_BYTES = 1 + 4 + 1;

export function proof(token: string, role: 'server' | 'client', first: Buffer, second: Buffer): Buffer {
  return createHmac('sha256', token).update(`quorumkv-${role}`).update(first).update(second).digest();
}

export function proofMatches(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** For refusals: the rotation mistake that looks like a wrong token. */
export const ROTATION_HINT = 'in a rotation A -> B every node must hold A,B before any holds B,A';

/** The token a node proves: the first of its list ('' on a cluster without one). */
export function provenToken(tokens: readonly string[]): string {
  return tokens[0] ?? '';
}

/**
 * Whether `given` is a proof made with any token of the list (with '' when the list is empty).
 * Every token is tried, whichever matches: the time taken does not say which one did.
 */
export function proofMatchesAny(
  given: Buffer,
  tokens: readonly string[],
  role: 'server' | 'client',
  first: Buffer,
  second: Buffer,
): boolean {
  let matched = false;
  for (const token of tokens.length === 0 ? [''] : tokens) {
    if (proofMatches(given, proof(token, role, first, second))) matched = true;
  }
  return matched;
}

// ---- message bodies ----------------------------------------------------------------------------

interface Codec {
  encode(out: OutBuffer, body: object): void;
  decode(r: Reader): object;
}

/** The body as JSON text (every type not on the hot path; the `type` field travels as the code). */
const json: Codec = {
  encode(out, body) {
    // the type travels as the frame's code; a shallow copy drops it (a replacer would also drop
    // `type` fields inside values)
    const { type: _type, ...rest } = body as { type?: unknown };
    out.str(JSON.stringify(rest), 4);
  },
  decode(r) {
    const text = r.str(4, 'json body');
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw new MalformedError(`body is not JSON: ${(err as Error).message}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MalformedError('body is not a JSON object');
    return v as object;
  },
};

const DELETED = 1;
const EXPIRES = 2;

function encodeVersion(out: OutBuffer, v: Version): void {
  out.f64(v.wallMs);
  out.u32(v.counter);
  out.str(v.nodeId, 1);
}

function decodeVersion(r: Reader): Version {
  return { wallMs: r.f64('version wall ms'), counter: r.u32('version counter'), nodeId: r.str(1, 'version node id') };
}

/** A record, by hand: flags, version (wall ms, counter, node id), expiry, the value as JSON text. */
function encodeRecord(out: OutBuffer, r: StoredRecord): void {
  out.u8((r.deleted ? DELETED : 0) | (r.expiresAt !== undefined ? EXPIRES : 0));
  encodeVersion(out, r.version);
  if (r.expiresAt !== undefined) out.f64(r.expiresAt);
  if (!r.deleted) out.str(JSON.stringify(r.value), 4);
}

function decodeRecord(r: Reader): StoredRecord {
  const flags = r.u8('record flags');
  if (flags & ~(DELETED | EXPIRES)) throw new MalformedError(`record flags ${flags} unknown`);
  const version = decodeVersion(r);
  const expiresAt = flags & EXPIRES ? r.f64('expiry') : undefined;
  if (flags & DELETED) return expiresAt === undefined ? { version, deleted: true } : { version, deleted: true, expiresAt };
  const text = r.str(4, 'value');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MalformedError(`record value is not JSON: ${(err as Error).message}`);
  }
  return (expiresAt === undefined ? { version, value } : { version, value, expiresAt }) as StoredRecord;
}

/**
 * Hand codecs for the messages every client request sends: replica writes and reads, and their
 * replies. A request's decoder builds the whole message, its type included.
 */
const HOT: Partial<Record<MessageType, { request: Codec; reply: Codec }>> = {
  write: {
    request: {
      encode(out, body) {
        const m = body as { key: string; record: StoredRecord };
        out.str(m.key, 2);
        encodeRecord(out, m.record);
      },
      decode(r) {
        return { type: 'write', key: r.str(2, 'key'), record: decodeRecord(r) };
      },
    },
    reply: {
      // bit 0: applied; bit 1: a newer version follows
      encode(out, body) {
        const b = body as { applied: boolean; newer?: Version };
        out.u8((b.applied ? 1 : 0) | (b.newer ? 2 : 0));
        if (b.newer) encodeVersion(out, b.newer);
      },
      decode(r) {
        const flags = r.u8('applied');
        if (flags & ~3) throw new MalformedError(`write reply flags ${flags} unknown`);
        return flags & 2 ? { applied: (flags & 1) === 1, newer: decodeVersion(r) } : { applied: (flags & 1) === 1 };
      },
    },
  },
  read: {
    request: {
      encode(out, body) {
        out.str((body as { key: string }).key, 2);
      },
      decode(r) {
        return { type: 'read', key: r.str(2, 'key') };
      },
    },
    reply: {
      encode(out, body) {
        const rec = (body as { record: StoredRecord | null }).record;
        out.u8(rec === null ? 0 : 1);
        if (rec !== null) encodeRecord(out, rec);
      },
      decode(r) {
        return { record: r.u8('record present') === 1 ? decodeRecord(r) : null };
      },
    },
  },
};

const BY_CODE = new Map<number, MessageType>(Object.entries(MESSAGE_SPECS).map(([type, spec]) => [spec.code, type as MessageType]));

export function typeOfCode(code: number): MessageType {
  const type = BY_CODE.get(code);
  if (type === undefined) throw new MalformedError(`unknown message code ${code}`);
  return type;
}

export function encodeRequestBody(out: OutBuffer, msg: Message): void {
  (HOT[msg.type]?.request ?? json).encode(out, msg);
}

export function decodeRequestBody(type: MessageType, r: Reader): Message {
  const hot = HOT[type];
  const body = (hot?.request ?? json).decode(r);
  r.done(`${type} request`);
  return (hot === undefined ? { ...body, type } : body) as Message;
}

export function encodeReplyBody(out: OutBuffer, type: MessageType, reply: object): void {
  (HOT[type]?.reply ?? json).encode(out, reply);
}

export function decodeReplyBody(type: MessageType, r: Reader): object {
  const body = (HOT[type]?.reply ?? json).decode(r);
  r.done(`${type} reply`);
  return body;
}

/**
 * Writes one message frame into `out`: length, kind, id, code, body. If the body cannot be
 * encoded, nothing is left in `out` and the error is thrown to the caller.
 */
export function writeFrame(out: OutBuffer, kind: number, id: number, code: number, body: (out: OutBuffer) => void): void {
  const start = out.length;
  try {
    const at = out.reserve32();
    out.u8(kind);
    out.u32(id);
    out.u8(code);
    body(out);
    out.patch32(at, out.length - at - 4);
  } catch (err) {
    out.truncate(start);
    throw err;
  }
}

/** An error frame's body: its code and a message for the caller's log and 503. */
export function encodeError(out: OutBuffer, code: number, message: string): void {
  out.u8(code);
  out.str(message.length > 2000 ? `${message.slice(0, 2000)}...` : message, 2);
}
