// First bytes of a connection → the host it is for, or the error we answer with. Only the first
// request's head is ever read; everything after it travels as opaque bytes. A connection that
// starts with a TLS handshake record is routed by the SNI name of its ClientHello instead, and
// its TLS is left to the upstream. llhttp checks HTTP syntax; the rules llhttp does not apply
// (HTTP/1.x only, exactly one Host, target forms, a cap on the head size) are ours and live here.

import { CLIENT_HELLO_MAX, isTlsHandshakeStart, parseClientHello } from './client-hello.js';
import { HeadError } from './errors.js';
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
      return this.finish(parser, fail('NORIKAE_ERR_HEAD_TOO_LARGE', 431, `The request head is larger than ${this.maxHeadSize} bytes.`));
    }
    if (consumed === HEAD_INVALID) {
      const error = parser.errorName === 'HPE_PAUSED_H2_UPGRADE'
        ? fail('NORIKAE_ERR_HTTP2_PRIOR_KNOWLEDGE', 400, 'HTTP/2 with prior knowledge is not supported; use HTTP/1.1 (or TLS, which is passed through).')
        : fail('NORIKAE_ERR_MALFORMED_HEAD', 400, `The request head is malformed (${parser.errorReason || parser.errorName}).`);
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
    return fail('NORIKAE_ERR_HTTP_VERSION', 505, `HTTP/${parser.httpMajor}.${parser.httpMinor} is not supported; use HTTP/1.1.`);
  }
  if (method === 'CONNECT') {
    return fail('NORIKAE_ERR_CONNECT', 405, 'CONNECT is not supported: norikae-splice routes requests to configured services, it is not a forward proxy.');
  }
  // RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; HTTP/1.0 may omit it.
  if (hosts.length > 1) return fail('NORIKAE_ERR_HOST', 400, 'The request has more than one Host header.');
  if (hosts.length === 0 && parser.httpMinor === 1) return fail('NORIKAE_ERR_HOST', 400, 'The request has no Host header.');
  let authority: string | undefined = hosts[0];
  if (url.charCodeAt(0) !== 0x2f /* / */ && !(url === '*' && method === 'OPTIONS')) {
    // Absolute-form (`GET http://app.localhost/ HTTP/1.1`): its authority wins over Host (§3.2.2).
    const absolute = /^(?:https?|wss?):\/\/([^/?#]*)/i.exec(url);
    if (!absolute) return fail('NORIKAE_ERR_TARGET', 400, `The request target "${url.slice(0, 200)}" is not a path or an http URL.`);
    authority = absolute[1]!;
    if (authority.includes('@')) return fail('NORIKAE_ERR_TARGET', 400, 'The request target carries user info, which HTTP does not allow.');
  }
  if (authority === undefined) return fail('NORIKAE_ERR_HOST', 400, 'The request has no Host header.');
  const host = hostOfAuthority(authority);
  if (host === undefined) return fail('NORIKAE_ERR_HOST', 400, `"${authority.slice(0, 200)}" is not a valid host.`);
  return host;
}

function fail(code: string, status: number, message: string): HeadError {
  return new HeadError(code, status, message);
}
