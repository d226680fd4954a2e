// The client→server direction of a connection whose TLS norikae terminated: every request head
// gets `X-Forwarded-Proto: https`, `X-Forwarded-Host`, `X-Forwarded-For` and `Forwarded` (RFC
// 7239), replacing any the client sent, so the dev server knows the request was HTTPS. A Transform
// between the TLS socket and the upstream, with an llhttp stream parser finding where each head
// starts and ends: heads are held (up to `maxHeadSize`) and rewritten, bodies pass on as they come,
// and after an Upgrade request (WebSockets) nothing more is parsed. A request llhttp refuses is an
// error, which ends the connection: no bytes that were not parsed reach the upstream unmarked.

import { isIP } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { RequestStreamParser, STREAM_SLICE } from './llhttp-stream.js';

/** The headers we set, lower-case: any the client sent under these names is dropped. */
const OURS = new Set(['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for', 'forwarded']);

export interface ForwardedOptions {
  /** The client's address (the TCP peer of the TLS connection). */
  clientAddress: string;
  /** The largest request head accepted; a larger one ends the connection. */
  maxHeadSize: number;
}

export class ForwardedHeaders extends Transform {
  private parser: RequestStreamParser | undefined = new RequestStreamParser();
  private state: 'head' | 'body' | 'tunnel' = 'head';
  /** The current head's bytes so far. */
  private head: Buffer[] = [];
  private headSize = 0;
  private readonly forwardedFor: string;
  private readonly clientAddress: string;

  constructor(private readonly options: ForwardedOptions) {
    super();
    this.clientAddress = options.clientAddress.startsWith('::ffff:') ? options.clientAddress.slice(7) : options.clientAddress;
    this.forwardedFor = isIP(this.clientAddress) === 6 ? `"[${this.clientAddress}]"` : this.clientAddress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      for (let offset = 0; offset < chunk.length; offset += STREAM_SLICE) this.feed(chunk.subarray(offset, offset + STREAM_SLICE));
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
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
      const step = this.parser!.execute(rest);
      if (step.kind === 'invalid') throw new Error(`a request on a TLS connection could not be read (${step.reason}); the connection is closed`);
      if (step.kind === 'more') {
        this.hold(rest);
        return;
      }
      this.hold(rest.subarray(0, step.at));
      rest = rest.subarray(step.at);
      if (step.kind === 'request-end') {
        this.state = 'head';
        continue;
      }
      this.push(this.rewrite(Buffer.concat(this.head, this.headSize)));
      this.head = [];
      this.headSize = 0;
      this.state = step.upgrade ? 'tunnel' : 'body';
      if (step.upgrade) this.release();
    }
  }

  /** Bytes of the current head (held) or body (passed on). */
  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.state === 'body') {
      this.push(bytes);
      return;
    }
    this.headSize += bytes.length;
    if (this.headSize > this.options.maxHeadSize) throw new Error(`a request head on a TLS connection is larger than ${this.options.maxHeadSize} bytes; the connection is closed`);
    // A copy: the socket's buffer may be reused once this chunk is handled.
    this.head.push(Buffer.from(bytes));
  }

  /** A complete head (llhttp accepted it) with the client's forwarding headers replaced by ours. */
  private rewrite(head: Buffer): Buffer {
    const lines = head.toString('latin1').split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
    // llhttp skips empty lines before a request line (RFC 9112 §2.2); they are dropped here.
    while (lines[0] === '' && lines.length > 3) lines.shift();
    // The head ends with an empty line, and split() leaves one more empty string after it.
    const kept = [lines[0]!];
    let host: string | undefined;
    let dropping = false;
    for (const line of lines.slice(1, -2)) {
      // An obsolete folded line continues the header before it.
      if (line.startsWith(' ') || line.startsWith('\t')) {
        if (!dropping) kept.push(line);
        continue;
      }
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      dropping = OURS.has(name);
      if (dropping) continue;
      if (name === 'host') host = line.slice(colon + 1).trim();
      kept.push(line);
    }
    kept.push('X-Forwarded-Proto: https');
    if (host !== undefined) kept.push(`X-Forwarded-Host: ${host}`);
    kept.push(`X-Forwarded-For: ${this.clientAddress}`);
    kept.push(`Forwarded: for=${this.forwardedFor}${host === undefined ? '' : `;host=${quoted(host)}`};proto=https`);
    return Buffer.from(`${kept.join('\r\n')}\r\n\r\n`, 'latin1');
  }

  private release(): void {
    this.parser?.destroy();
    this.parser = undefined;
  }
}

/** An RFC 7230 quoted-string. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, (ch) => `\\${ch}`)}"`;
}
