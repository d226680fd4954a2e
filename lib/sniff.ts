// First bytes of a connection → the host it is for, or the error we answer with. Only the first
// request's head is ever read; everything after it travels as opaque bytes. A connection that
// starts with a TLS handshake record is routed by the SNI name of its ClientHello instead, and
// its TLS is left to the upstream. llhttp checks HTTP syntax; the rules llhttp does not apply
// (HTTP/1.x only, exactly one Host, target forms, a cap on the head size) are ours and live here,
// and so does reading the host out of an authority or SNI name (hostOfAuthority), for router.ts.

import { isIP } from 'node:net';
import { CLIENT_HELLO_MAX, isTlsHandshakeStart, parseClientHello } from './client-hello.js';
import { HeadError, headErrors } from './errors.js';
import { HEAD_INCOMPLETE, HEAD_INVALID, RequestHeadParser } from './llhttp.js';

export type SniffResult =
  /** An HTTP/1.x request head for `host` (normalised by hostOfAuthority). */
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

  /** The request target of the head read (as sent), once there is an 'http' result. */
  target = '';

  private finish(parser: RequestHeadParser, outcome: string | HeadError): SniffResult {
    const accept = parser.accept;
    this.target = parser.url;
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

/**
 * The host name of an HTTP authority (`Host` header or absolute-form target), lower-cased, without
 * port or trailing dot: `App.Localhost.:8080` → `app.localhost`. IPv6 literals lose their
 * brackets. Undefined when it is not a valid authority.
 */
export function hostOfAuthority(authority: string): string | undefined {
  const bracketed = authority.startsWith('[');
  let host: string;
  /** Where the host ends and an optional `:port` starts. */
  let end: number;
  if (bracketed) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(1, close);
    if (isIP(host) !== 6) return undefined;
    end = close + 1;
  } else {
    const colon = authority.indexOf(':');
    end = colon === -1 ? authority.length : colon;
    host = authority.slice(0, end);
  }
  if (!isPortSuffix(authority, end)) return undefined;
  // This runs per request. Most names are lower-case reg-names already: checked in place (the
  // slice is slower to scan), they need neither toLowerCase() nor a second check.
  const lowerRegName = !bracketed && isRegName(authority, 0, end);
  if (!lowerRegName) host = host.toLowerCase();
  if (host.charCodeAt(host.length - 1) === 0x2e /* . */) host = host.slice(0, -1);
  if (host === '' || (!bracketed && !lowerRegName && !isRegName(host, 0, host.length))) return undefined;
  return host;
}

/** Whether `authority` from `at` is nothing, or `:` and a port: at most five digits, 65535 at most (`:` alone is allowed, RFC 3986). */
function isPortSuffix(authority: string, at: number): boolean {
  if (at === authority.length) return true;
  if (authority.length - at > 6 || authority.charCodeAt(at) !== 0x3a /* : */) return false;
  let port = 0;
  for (let i = at + 1; i < authority.length; i++) {
    const c = authority.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
    port = port * 10 + (c - 0x30);
  }
  return port <= 65535;
}

/** RFC 3986 reg-name characters, less percent-encoding (dev host names never need it), by char code. */
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyz0123456789._~!$&'()*+,;=-") REG_NAME[c.charCodeAt(0)] = 1;

/** Whether `text` from `start` to `end` is all REG_NAME characters (`/^[a-z0-9._~!$&'()*+,;=-]*$/`). */
function isRegName(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || REG_NAME[c] === 0) return false;
  }
  return true;
}
