// First bytes of a connection → the host it is for, or the error we answer with. Only the first
// request's head is ever read; everything after it travels as opaque bytes. A connection that
// starts with a TLS handshake record is routed by the SNI name of its ClientHello instead, and
// its TLS is left to the upstream. llhttp checks HTTP syntax; the rules llhttp does not apply
// (HTTP/1.x only, exactly one Host, target forms, a cap on the head size) are ours and live here.

import { CLIENT_HELLO_MAX, isTlsHandshakeStart, parseClientHello } from './client-hello.js';
import { HeadError, headErrors } from './errors.js';
import { HEAD_INCOMPLETE, HEAD_INVALID, RequestHeadParser } from './llhttp.js';
import { hostOfAuthority } from './router.js';

export type SniffResult =
  /** An HTTP/1.x request head for `host` (normalised, see router.ts). */
  | { kind: 'http'; host: string; accept: string }
  /** A TLS ClientHello; `host` is its SNI name, undefined when it has none. */
  | { kind: 'tls'; host: string | undefined }
  /** An HTTP head we refuse, answered with `error.status`. */
  | { kind: 'http-error'; error: HeadError; accept: string }
  /** A TLS ClientHello we cannot read; there is no way to answer but closing. */
  | { kind: 'tls-error'; reason: string };

/** Reads one connection's first request head or ClientHello, chunk by chunk, never past the cap. */
export class HeadSniffer {
  private parser: RequestHeadParser | undefined;
  /** The bytes of a ClientHello so far (TLS only: its parser wants them whole). */
  private tlsBytes: Buffer | undefined;
  private received = 0;
  private done = false;

  constructor(private readonly maxHeadSize: number) {}

  /**
   * Feeds the next chunk. Undefined while the head is incomplete; then a result, once. The
   * parser is released as soon as there is a result, so a finished sniffer holds no wasm memory.
   */
  push(chunk: Buffer): SniffResult | undefined {
    if (this.done) throw new Error('HeadSniffer.push after its result');
    if (this.received === 0 && chunk.length > 0 && isTlsHandshakeStart(chunk[0]!)) this.tlsBytes = Buffer.alloc(0);
    if (this.tlsBytes !== undefined) return this.pushTls(chunk);
    const parser = (this.parser ??= new RequestHeadParser());
    const room = this.maxHeadSize - this.received;
    const input = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.received += input.length;
    const consumed = parser.execute(input);
    if (consumed === HEAD_INCOMPLETE) {
      if (this.received < this.maxHeadSize) return undefined;
      return this.finish(parser, headErrors.tooLarge(this.maxHeadSize));
    }
    if (consumed === HEAD_INVALID) {
      const error = parser.errorName === 'HPE_PAUSED_H2_UPGRADE'
        ? headErrors.http2PriorKnowledge()
        : headErrors.malformed(parser.errorReason || parser.errorName);
      return this.finish(parser, error);
    }
    return this.finish(parser, checkHead(parser));
  }

  /** The bytes so far start a TLS handshake (a ClientHello), not an HTTP request. */
  get isTls(): boolean {
    return this.tlsBytes !== undefined;
  }

  /** Releases the parser if the connection ends before a result. Idempotent. */
  destroy(): void {
    this.done = true;
    this.parser?.destroy();
    this.parser = undefined;
    this.tlsBytes = undefined;
  }

  private pushTls(chunk: Buffer): SniffResult | undefined {
    // CLIENT_HELLO_MAX, not max_head_size: that is an HTTP limit, which may be set below what a
    // browser's ClientHello takes (post-quantum key shares make them about 2 KB).
    const room = CLIENT_HELLO_MAX - this.tlsBytes!.length;
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    // A ClientHello in one read (the usual case) is parsed where it lies; nothing writes to it.
    this.tlsBytes = this.tlsBytes!.length === 0 ? piece : Buffer.concat([this.tlsBytes!, piece]);
    this.received = this.tlsBytes.length;
    const hello = parseClientHello(this.tlsBytes, CLIENT_HELLO_MAX);
    if (hello.kind === 'incomplete') {
      if (this.received < CLIENT_HELLO_MAX) return undefined;
      this.destroy();
      return { kind: 'tls-error', reason: `the ClientHello is larger than ${CLIENT_HELLO_MAX} bytes` };
    }
    this.destroy();
    if (hello.kind === 'invalid') return { kind: 'tls-error', reason: hello.reason };
    return { kind: 'tls', host: hello.serverName === undefined ? undefined : hostOfAuthority(hello.serverName) };
  }

  private finish(parser: RequestHeadParser, outcome: string | HeadError): SniffResult {
    const accept = parser.accept;
    this.destroy();
    return outcome instanceof HeadError ? { kind: 'http-error', error: outcome, accept } : { kind: 'http', host: outcome, accept };
  }
}

/** The rules of RFC 9112 that llhttp leaves to us, applied to a complete head. */
function checkHead(parser: RequestHeadParser): string | HeadError {
  const { method, url, hosts } = parser;
  if (parser.httpMajor !== 1 || parser.httpMinor > 1) {
    return headErrors.httpVersion(parser.httpMajor, parser.httpMinor);
  }
  if (method === 'CONNECT') {
    return headErrors.connectMethod();
  }
  // RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; HTTP/1.0 may omit it.
  if (hosts.length > 1) return headErrors.manyHosts();
  if (hosts.length === 0 && parser.httpMinor === 1) return headErrors.noHost();
  let authority: string | undefined = hosts[0];
  if (url.charCodeAt(0) !== 0x2f /* / */ && !(url === '*' && method === 'OPTIONS')) {
    // Absolute-form (`GET http://app.localhost/ HTTP/1.1`): its authority wins over Host (§3.2.2).
    const absolute = /^(?:https?|wss?):\/\/([^/?#]*)/i.exec(url);
    if (!absolute) return headErrors.badTarget(url);
    authority = absolute[1]!;
    if (authority.includes('@')) return headErrors.userInfo();
  }
  if (authority === undefined) return headErrors.noHost();
  const host = hostOfAuthority(authority);
  if (host === undefined) return headErrors.badHost(authority);
  return host;
}
