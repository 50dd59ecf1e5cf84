// Frames on the internode wire: the splitter that turns the chunks a socket delivers into whole
// frames whatever their boundaries. (Frames are encoded with core/bytes.ts.)
//
// A frame is `u32 length ‖ length bytes`, big-endian, as in Cassandra's and memberlist's streams.
// Anything malformed raises MalformedError; the connection that sent it is closed, never the process.

import { MalformedError } from '../core/bytes';

export const FRAME_HEADER_BYTES = 4;

/**
 * Splits a byte stream into frames (`u32 length ‖ body`), bodies of at most `maxFrameBytes`.
 * `push` takes chunks as the socket delivers them and returns the whole frames they complete,
 * each a Buffer of its body. A length over the bound is a MalformedError, raised before any of it
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
        if (length > this.maxFrameBytes) throw new MalformedError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
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
