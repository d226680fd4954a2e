// TLS terminated at the edge, for services whose dev server speaks plain HTTP. The listener has
// read the ClientHello (and routed its SNI name) already: those bytes are put back on the socket,
// and a server-side TLSSocket is built over it with the name's certificate from the local CA.
// What comes out decrypted takes the plain HTTP path (server.ts), unchanged.

import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createDebug } from './packages.js';
import { TlsAlert, writeTlsAlert } from './answers.js';
import type { Certificates } from './certificates.js';
import { CaError, ErrorCode } from './errors.js';
import type { Log } from './log.js';
import { logSocketError } from './splice.js';

const debug = createDebug('norikae:tls');

/** What we offer in ALPN: HTTP/1.1 only, since the upstream is spliced as HTTP/1.x. */
export const ALPN_PROTOCOLS = ['http/1.1'];

export class TlsEdge {
  /** Names already warned about (outside the CA's constraints): one warning each, not one per handshake. */
  private readonly warned = new Set<string>();

  constructor(
    readonly certificates: Certificates,
    private readonly log: Log,
  ) {}

  /**
   * The decrypted side of `client`, whose ClientHello for `host` is `hello` (already read from it,
   * with nothing after it read), or undefined when it was answered with an alert instead (no
   * certificate could be had for `host`). Never rejects.
   */
  async terminate(client: Socket, host: string, hello: readonly Buffer[]): Promise<TLSSocket | undefined> {
    let context;
    try {
      context = await this.certificates.secureContext(host);
    } catch (err) {
      this.refuse(client, host, err);
      return undefined;
    }
    if (client.destroyed) return undefined;
    // TLSSocket feeds what is buffered on the socket to the handshake first: the hello goes back there.
    client.unshift(hello.length === 1 ? hello[0]! : Buffer.concat(hello));
    const secure = new TLSSocket(client, { isServer: true, secureContext: context, ALPNProtocols: ALPN_PROTOCOLS });
    // From its first moment, as every socket of ours (server.ts adds its own when it reads from it).
    secure.on('error', logSocketError);
    if (debug.enabled) secure.once('secure', () => debug('TLS for %s terminated (%s)', host, secure.getProtocol()));
    return secure;
  }

  private refuse(client: Socket, host: string, err: unknown): void {
    if (err instanceof CaError && err.code === ErrorCode.CA_CONSTRAINTS) {
      if (!this.warned.has(host)) this.log.warn(err.message);
      this.warned.add(host);
    } else {
      this.log.error(`no certificate for ${host}: ${err instanceof Error ? err.message : String(err)}`);
    }
    writeTlsAlert(client, TlsAlert.INTERNAL_ERROR);
  }
}
