// Bytes on the internode wire: a growable output buffer that frames are encoded into (one buffer,
// handed to the socket whole, per flush), a bounds-checked reader, and the frame splitter that
// turns the chunks a socket delivers into whole frames whatever their boundaries.
//
// A frame is `u32 length ‖ length bytes`, big-endian, as in Cassandra's and memberlist's streams.
// Anything malformed raises ProtocolError; the connection that sent it is closed, never the process.

/** The peer broke the protocol (bad magic, bad frame, bad field): its connection is closed. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export const FRAME_HEADER_BYTES = 4;

/** Encodes into one buffer that grows by doubling; `take()` hands the bytes over and starts afresh. */
export class OutBuffer {
  private buf: Buffer;
  private at = 0;

  constructor(private readonly initialBytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.at;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.at++] = v;
  }

  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v, this.at);
    this.at += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v, this.at);
    this.at += 4;
  }

  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleBE(v, this.at);
    this.at += 8;
  }

  /** Writes `v` as UTF-8 after a length prefix of `prefixBytes` (1, 2 or 4). */
  str(v: string, prefixBytes: 1 | 2 | 4): void {
    const n = Buffer.byteLength(v, 'utf8');
    const max = prefixBytes === 1 ? 0xff : prefixBytes === 2 ? 0xffff : 0xffffffff;
    if (n > max) throw new RangeError(`string of ${n} bytes does not fit a ${prefixBytes}-byte length`);
    this.room(prefixBytes + n);
    if (prefixBytes === 1) this.buf[this.at] = n;
    else if (prefixBytes === 2) this.buf.writeUInt16BE(n, this.at);
    else this.buf.writeUInt32BE(n, this.at);
    this.at += prefixBytes;
    this.at += this.buf.write(v, this.at, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** Reserves a u32 to fill in later (a frame's length); returns its offset. */
  reserve32(): number {
    this.room(4);
    this.at += 4;
    return this.at - 4;
  }

  patch32(offset: number, v: number): void {
    this.buf.writeUInt32BE(v, offset);
  }

  /** Drops everything written after `length` (a frame that failed to encode). */
  truncate(length: number): void {
    this.at = Math.min(this.at, length);
  }

  /** The bytes written so far; the buffer starts afresh (the caller owns what it got). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.at);
    this.buf = Buffer.allocUnsafe(Math.max(this.initialBytes, Math.min(this.buf.length, 1 << 20)));
    this.at = 0;
    return out;
  }
}

/** Reads fields from one frame's bytes; any read past the end is a ProtocolError. */
export class Reader {
  private at: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.at = start;
  }

  get remaining(): number {
    return this.end - this.at;
  }

  private need(n: number, what: string): void {
    if (this.at + n > this.end) throw new ProtocolError(`truncated frame: ${what} needs ${n} bytes, ${this.end - this.at} left`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.at++] as number;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  f64(what = 'f64'): number {
    this.need(8, what);
    const v = this.buf.readDoubleBE(this.at);
    this.at += 8;
    return v;
  }

  str(prefixBytes: 1 | 2 | 4, what = 'string'): string {
    const n = prefixBytes === 1 ? this.u8(what) : prefixBytes === 2 ? this.u16(what) : this.u32(what);
    this.need(n, what);
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }

  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  /** The rest of the frame as UTF-8. */
  rest(): string {
    const s = this.buf.toString('utf8', this.at, this.end);
    this.at = this.end;
    return s;
  }

  /** Every byte was read: trailing bytes are a malformed frame. */
  done(what: string): void {
    if (this.at !== this.end) throw new ProtocolError(`${what}: ${this.end - this.at} unexpected trailing bytes`);
  }
}

/**
 * Splits a byte stream into frames (`u32 length ‖ body`), bodies of at most `maxFrameBytes`.
 * `push` takes chunks as the socket delivers them and returns the whole frames they complete,
 * each a Buffer of its body. A length over the bound is a ProtocolError, raised before any of it
 * is buffered.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length of the frame being assembled, once its header is in. */
  private want = -1;

  /** `maxFrameBytes` may be raised later (a connection allows bigger frames once the peer has proven itself). */
  constructor(public maxFrameBytes: number) {}

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.buffered + (this.want >= 0 ? FRAME_HEADER_BYTES : 0);
  }

  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (chunk.length === 0) return frames;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.want < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const head = this.peek(FRAME_HEADER_BYTES);
        const length = head.readUInt32BE(0);
        if (length > this.maxFrameBytes) throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
        this.consume(FRAME_HEADER_BYTES);
        this.want = length;
      }
      if (this.buffered < this.want) break;
      frames.push(this.consume(this.want));
      this.want = -1;
    }
    return frames;
  }

  /** The first `n` buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    return Buffer.concat(this.chunks, this.buffered).subarray(0, n);
  }

  /** Removes and returns the first `n` buffered bytes (a view when they lie in one chunk). */
  private consume(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0] as Buffer;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0] as Buffer;
      const take = Math.min(c.length, n - at);
      c.copy(out, at, 0, take);
      at += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    return out;
  }
}
