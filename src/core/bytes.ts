// Bytes, encoded by hand: a growable output buffer (one allocation handed over whole per batch of
// records or frames), a bounds-checked reader, and CRC-32. Shared by the internode protocol
// (src/net) and the commit log (src/storage). Pure: no I/O.

/** Bytes that do not decode (truncated, a bad field): from a peer, its connection is closed; on disk, the log ends there. */
export class MalformedError extends Error {
  override name = 'MalformedError';
}

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

/** Reads fields from one frame's or record's bytes; any read past the end is a MalformedError. */
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
    if (this.at + n > this.end) throw new MalformedError(`truncated frame: ${what} needs ${n} bytes, ${this.end - this.at} left`);
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
    if (this.at !== this.end) throw new MalformedError(`${what}: ${this.end - this.at} unexpected trailing bytes`);
  }
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib and gzip compute it) of `bytes[start, end)`, continuing from `crc`. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
