// The client→server direction of a connection whose TLS norikae terminated: every request head
// gets `X-Forwarded-Proto: https`, `X-Forwarded-Host`, `X-Forwarded-For` and `Forwarded` (RFC
// 7239), replacing any the client sent, so the dev server knows the request was HTTPS. A Transform
// between the TLS socket and the upstream, with an llhttp stream parser finding where each head
// starts and ends: heads are held (up to `maxHeadSize`) and rewritten, bodies pass on as they come,
// and once an Upgrade (WebSockets) is taken, or after CONNECT, nothing more is parsed. A request
// llhttp refuses is an error, which ends the connection: no bytes that were not parsed reach the
// upstream unmarked.

import { isIP } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { RequestStreamParser, STREAM_SLICE } from './llhttp-stream.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

const EMPTY = Buffer.alloc(0);

/** Host values whose lines one connection keeps. */
const LINES_CACHED = 8;

/** What a header name is to the rewrite (nameOf). */
const OTHER = 0;
const HOST = 1;
/** One of the headers we set: any the client sent under these names is dropped. */
const DROPPED = 2;
/** Lower-case names as bytes, by length (each of these names has a length of its own). */
const NAMES = new Map<number, [Buffer, number]>(
  [['host', HOST], ['x-forwarded-proto', DROPPED], ['x-forwarded-host', DROPPED], ['x-forwarded-for', DROPPED], ['forwarded', DROPPED]]
    .map(([name, kind]) => [(name as string).length, [Buffer.from(name as string, 'latin1'), kind as number]]),
);

export interface ForwardedOptions {
  /** The client's address (the TCP peer of the TLS connection). */
  clientAddress: string;
  /** The largest request head accepted; a larger one ends the connection. */
  maxHeadSize: number;
}

export class ForwardedHeaders extends Transform {
  private parser: RequestStreamParser | undefined = new RequestStreamParser();
  /** `upgraded`: after an Upgrade request, until the client's next bytes say whether it was declined. */
  private state: 'head' | 'body' | 'upgraded' | 'tunnel' = 'head';
  /** In `upgraded`: a first byte that came alone. */
  private firstAfterUpgrade: Buffer | undefined;
  /** The current head's bytes so far. */
  private head: Buffer[] = [];
  private headSize = 0;
  private readonly forwardedFor: string;
  private readonly clientAddress: string;
  /** Our lines by Host value (`ourHeaders`), and for a head with no Host. */
  private readonly linesByHost = new Map<string, Buffer>();
  private noHostLines: Buffer | undefined;

  constructor(private readonly options: ForwardedOptions) {
    super();
    this.clientAddress = options.clientAddress.startsWith('::ffff:') ? options.clientAddress.slice(7) : options.clientAddress;
    this.forwardedFor = isIP(this.clientAddress) === 6 ? `"[${this.clientAddress}]"` : this.clientAddress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (chunk.length <= STREAM_SLICE) this.feed(chunk);
      else for (let offset = 0; offset < chunk.length; offset += STREAM_SLICE) this.feed(chunk.subarray(offset, offset + STREAM_SLICE));
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.firstAfterUpgrade !== undefined) this.push(this.firstAfterUpgrade);
    this.release();
    callback();
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.release();
    callback(err);
  }

  private feed(data: Buffer): void {
    let rest = data;
    while (rest.length > 0) {
      if (this.state === 'tunnel') {
        this.push(rest);
        return;
      }
      if (this.state === 'upgraded') {
        const seen = this.firstAfterUpgrade === undefined ? rest : Buffer.concat([this.firstAfterUpgrade, rest]);
        this.firstAfterUpgrade = undefined;
        if (seen.length < 2) {
          this.firstAfterUpgrade = Buffer.from(seen);
          return;
        }
        if (!startsRequestLine(seen)) {
          this.state = 'tunnel';
          this.release();
          this.push(seen);
          return;
        }
        // The dev server declined the upgrade and the client goes on with HTTP: so do we.
        this.parser!.reset();
        this.state = 'head';
        rest = seen;
      }
      const step = this.parser!.execute(rest);
      if (step.kind === 'invalid') throw new Error(`a request on a TLS connection could not be read (${step.reason}); the connection is closed`);
      if (step.kind === 'more') {
        this.hold(rest);
        return;
      }
      // Usually the chunk is one whole head: then no views are made.
      const whole = step.at === rest.length;
      const before = whole ? rest : rest.subarray(0, step.at);
      rest = whole ? EMPTY : rest.subarray(step.at);
      if (step.kind === 'request-end') {
        this.hold(before);
        this.state = 'head';
        continue;
      }
      this.push(this.rewrite(this.wholeHead(before)));
      this.state = step.connect ? 'tunnel' : step.upgrade ? 'upgraded' : step.bodyless ? 'head' : 'body';
      if (step.connect) this.release();
    }
  }

  /** Bytes of the current head (held) or body (passed on). */
  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.state === 'body') {
      this.push(bytes);
      return;
    }
    this.countHead(bytes.length);
    // A copy: the socket's buffer may be reused once this chunk is handled.
    this.head.push(Buffer.from(bytes));
  }

  /** The head that `last` completes; a head that came in one read (the usual case) is not copied. */
  private wholeHead(last: Buffer): Buffer {
    this.countHead(last.length);
    if (this.head.length === 0) return last;
    this.head.push(last);
    const head = Buffer.concat(this.head, this.headSize);
    this.head = [];
    return head;
  }

  private countHead(bytes: number): void {
    this.headSize += bytes;
    if (this.headSize > this.options.maxHeadSize) throw new Error(`a request head on a TLS connection is larger than ${this.options.maxHeadSize} bytes; the connection is closed`);
  }

  /**
   * A complete head (llhttp accepted it) with the client's forwarding headers left out and ours
   * added before its blank line. Byte ranges are copied, nothing is decoded but the Host value:
   * this runs for every request on the connection.
   */
  private rewrite(head: Buffer): Buffer {
    this.headSize = 0;
    // llhttp skips empty lines before a request line (RFC 9112 §2.2); they are dropped here.
    let start = 0;
    while (head[start] === CR || head[start] === LF) start++;
    // llhttp (strict) took only CRLF line ends and no folded lines: every line is a header, and
    // the head ends with a blank CRLF line.
    const blank = head.length - 2;
    /** Pairs of [from, to) offsets of `head` that are kept, in order. */
    const kept: number[] = [];
    let keepFrom = start;
    let hostFrom = -1;
    let hostTo = -1;
    for (let line = head.indexOf(LF, start) + 1; line < blank;) {
      const next = head.indexOf(LF, line) + 1;
      const colon = head.indexOf(COLON, line);
      const name = nameOf(head, line, colon);
      if (name === HOST) {
        hostFrom = colon + 1;
        hostTo = next - 2;
      }
      if (name === DROPPED) {
        if (line > keepFrom) kept.push(keepFrom, line);
        keepFrom = next;
      }
      line = next;
    }
    if (blank > keepFrom) kept.push(keepFrom, blank);
    const ours = this.ourHeaders(head, hostFrom, hostTo);
    let size = ours.length;
    for (let i = 0; i < kept.length; i += 2) size += kept[i + 1]! - kept[i]!;
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = 0; i < kept.length; i += 2) at += head.copy(out, at, kept[i]!, kept[i + 1]!);
    ours.copy(out, at);
    return out;
  }

  /**
   * Our header lines and the blank line, for the Host value at `from`..`to` of `head` (-1: none).
   * A connection sends the same Host or few over and over: the lines are made once per value.
   */
  private ourHeaders(head: Buffer, from: number, to: number): Buffer {
    if (from === -1) return (this.noHostLines ??= this.linesFor(undefined));
    while (from < to && (head[from] === SP || head[from] === HTAB)) from++;
    while (to > from && (head[to - 1] === SP || head[to - 1] === HTAB)) to--;
    const host = head.toString('latin1', from, to);
    let lines = this.linesByHost.get(host);
    if (lines === undefined) {
      // Bounded: a client cycling through Host values only makes us build lines each time.
      if (this.linesByHost.size === LINES_CACHED) this.linesByHost.clear();
      this.linesByHost.set(host, (lines = this.linesFor(host)));
    }
    return lines;
  }

  private linesFor(host: string | undefined): Buffer {
    const lines = ['X-Forwarded-Proto: https'];
    if (host !== undefined) lines.push(`X-Forwarded-Host: ${host}`);
    lines.push(`X-Forwarded-For: ${this.clientAddress}`);
    lines.push(`Forwarded: for=${this.forwardedFor}${host === undefined ? '' : `;host=${quoted(host)}`};proto=https`);
    return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  }

  private release(): void {
    this.parser?.destroy();
    this.parser = undefined;
  }
}

/**
 * Whether the first bytes after an Upgrade request start another request (the upgrade was
 * declined) rather than the new protocol. Responses are not read, so the client's bytes decide: a
 * method's first two bytes are capital letters, while a WebSocket client masks every frame, which
 * sets the top bit of a frame's second byte.
 */
function startsRequestLine(bytes: Buffer): boolean {
  return isCapital(bytes[0]!) && isCapital(bytes[1]!);
}

function isCapital(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

/**
 * What the header name at `from`..`to` of `head` is: HOST, DROPPED or OTHER. Case-insensitive:
 * `| 0x20` lower-cases ASCII letters and leaves `-` as it is, and llhttp let only token bytes
 * through, none of which `| 0x20` turns into a letter or `-` of these names.
 */
function nameOf(head: Buffer, from: number, to: number): number {
  const known = NAMES.get(to - from);
  if (known === undefined) return OTHER;
  const [name, kind] = known;
  for (let i = 0; i < name.length; i++) if ((head[from + i]! | 0x20) !== name[i]) return OTHER;
  return kind;
}

/** An RFC 7230 quoted-string. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, (ch) => `\\${ch}`)}"`;
}
