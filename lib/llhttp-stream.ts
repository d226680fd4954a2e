// llhttp over a whole client→server stream: request after request, pausing at the end of every head
// and at the end of every request, so the caller knows where each head starts and ends. Bodies
// (Content-Length, chunked) are only scanned for their framing by llhttp; nothing is decoded. It
// shares the wasm instance and input area of llhttp.ts, whose callbacks do nothing for a parser
// that is not a head parser but pause it at those two points.

import { ERROR, METHODS, TYPE } from './packages.js';
import { copyInput, type LlhttpExports, wasmInstance } from './llhttp.js';

/** What `execute` found in the bytes it was given. */
export type StreamStep =
  /** All of them belong to the current head or body. */
  | { kind: 'more' }
  /**
   * The head ends after `at` bytes; `upgrade`: an Upgrade (or CONNECT) request, after which nothing
   * may be HTTP no more (`connect`: a CONNECT request, after which it never is); `bodyless`: the
   * request ends with its head (no 'request-end' follows).
   */
  | { kind: 'head-end'; at: number; upgrade: boolean; connect: boolean; bodyless: boolean }
  /** The request (its body included) ends after `at` bytes. */
  | { kind: 'request-end'; at: number }
  | { kind: 'invalid'; reason: string };

/** Bytes given to llhttp at once: the input area in wasm memory never grows past this for a stream. */
export const STREAM_SLICE = 16 * 1024;

/** A wasm parser dropped without destroy() is freed, late. */
const abandoned = new FinalizationRegistry<number>((ptr) => wasmInstance().llhttp_free(ptr));

export class RequestStreamParser {
  private readonly w: LlhttpExports;
  private ptr: number;
  /** Paused at a head's end (the next pause is the request's end), or at a request's end. */
  private inHead = true;
  private paused = false;

  constructor() {
    this.w = wasmInstance();
    this.ptr = this.w.llhttp_alloc(TYPE.REQUEST);
    if (this.ptr === 0) throw new RangeError('llhttp: out of wasm memory');
    abandoned.register(this, this.ptr, this);
  }

  /**
   * Parses `data` (at most STREAM_SLICE bytes) up to the next head or request end, which it reports
   * with how many bytes of `data` come before it; the caller passes the rest in the next call.
   */
  execute(data: Uint8Array): StreamStep {
    if (this.ptr === 0) throw new Error('RequestStreamParser.execute() after destroy()');
    if (data.length > STREAM_SLICE) throw new RangeError(`RequestStreamParser.execute() takes at most ${STREAM_SLICE} bytes`);
    const w = this.w;
    if (this.paused) {
      w.llhttp_resume(this.ptr);
      this.paused = false;
    }
    const at = copyInput(w, data);
    const errno = w.llhttp_execute(this.ptr, at, data.length);
    if (errno === ERROR.OK) return MORE;
    if (errno === ERROR.PAUSED) {
      this.paused = true;
      const consumed = w.llhttp_get_error_pos(this.ptr) - at;
      if (this.inHead) {
        const upgrade = w.llhttp_get_upgrade(this.ptr) !== 0;
        this.inHead = false;
        if (upgrade) return { kind: 'head-end', at: consumed, upgrade, connect: w.llhttp_get_method(this.ptr) === METHODS.CONNECT, bodyless: false };
        // Most requests have no body: llhttp learns that without more input, and a zero-length
        // run tells it here, which saves a call and a copy of the next request's bytes.
        w.llhttp_resume(this.ptr);
        const next = w.llhttp_execute(this.ptr, at + consumed, 0);
        if (next === ERROR.PAUSED) {
          this.inHead = true;
          return { kind: 'head-end', at: consumed, upgrade, connect: false, bodyless: true };
        }
        this.paused = false;
        if (next !== ERROR.OK) return this.invalid(next);
        return { kind: 'head-end', at: consumed, upgrade, connect: false, bodyless: false };
      }
      this.inHead = true;
      return { kind: 'request-end', at: consumed };
    }
    return this.invalid(errno);
  }

  private invalid(errno: number): StreamStep {
    return { kind: 'invalid', reason: cString(this.w, this.w.llhttp_get_error_reason(this.ptr)) || `llhttp error ${errno}` };
  }

  /** Starts over at a new request (after an Upgrade the server declined: the connection is HTTP still). */
  reset(): void {
    if (this.ptr === 0) throw new Error('RequestStreamParser.reset() after destroy()');
    this.w.llhttp_reset(this.ptr);
    this.inHead = true;
    this.paused = false;
  }

  /** Frees the wasm parser. Idempotent. */
  destroy(): void {
    if (this.ptr === 0) return;
    abandoned.unregister(this);
    this.w.llhttp_free(this.ptr);
    this.ptr = 0;
  }
}

const MORE: StreamStep = Object.freeze({ kind: 'more' });

function cString(w: LlhttpExports, ptr: number): string {
  if (ptr === 0) return '';
  const memory = Buffer.from(w.memory.buffer);
  return memory.toString('latin1', ptr, memory.indexOf(0, ptr));
}
