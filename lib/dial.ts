// Reaching a service's upstream port: one TCP connect, resolved with a socket ready to splice or
// rejected with an UpstreamConnectError that says why (ECONNREFUSED means nothing listens).

import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { UpstreamConnectError } from './errors.js';
import { watchDial } from './loop-guard.js';
import { logSocketError } from './splice.js';
import { startTimer } from './timer.js';

export const DEFAULT_UPSTREAM_HOST = '127.0.0.1';

/**
 * Connects to `host:port`; the socket is half-open capable with Nagle off, like the client side.
 * A port that never answers (SYNs dropped) fails with ETIMEDOUT after `timeoutMs`.
 */
export function dial(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true });
    // Set only for a dial to one of norikae's own ports: a loop (see loop-guard.ts).
    let ownPort = watchDial(port);
    const onError = (err: NodeJS.ErrnoException): void => {
      ownPort?.(undefined);
      ownPort = undefined;
      timer.clear();
      socket.destroy();
      reject(new UpstreamConnectError(host, port, err.code ?? err.message, { cause: err }));
    };
    const timer = startTimer(timeoutMs, () => onError(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    // `on`, not `once`: each fires once here, and once() costs a wrapper per connection.
    const onConnect = (): void => {
      // Off again: a listener left on the socket would keep this closure, its cleared timer and
      // the settled promise alive for as long as the connection lasts.
      socket.off('connect', onConnect);
      timer.clear();
      if (isSelfConnection(socket, port)) {
        // TCP simultaneous open: a connect to a free port in the ephemeral range can land on itself.
        onError(Object.assign(new Error('connected to itself'), { code: 'ECONNREFUSED' }));
        return;
      }
      socket.off('error', onError);
      ownPort?.(socket);
      // From here on errors end the splice through 'close'; this only keeps them from throwing.
      socket.on('error', logSocketError);
      resolve(socket);
    };
    socket.on('error', onError);
    socket.on('connect', onConnect);
  });
}

/**
 * Connects to the first of `hosts` that accepts, in order, and says which one did. A dev server
 * bound to `localhost` may listen on 127.0.0.1 or on ::1 only; a refusal on loopback is instant,
 * so trying one after the other costs next to nothing. Rejects with the first host's error when
 * none accepts: a later host whose family the machine lacks (IPv6 switched off, as in many
 * containers) says nothing about the service, and the refusal must stay a refusal, which launches it.
 */
export async function dialFirst(hosts: readonly string[], port: number, timeoutMs: number): Promise<{ socket: Socket; host: string }> {
  let first: unknown;
  for (const host of hosts) {
    try {
      return { socket: await dial(host, port, timeoutMs), host };
    } catch (err) {
      first ??= err;
      const reason = err instanceof UpstreamConnectError ? err.reason : '';
      // On to the next host after a refusal, or, past the first host, a family this machine lacks.
      if (reason !== 'ECONNREFUSED' && (err === first || !FAMILY_MISSING.has(reason))) throw err;
    }
  }
  throw first;
}

/**
 * Where to dial a service: its configured upstream, else loopback on both families, the address
 * that answered last first (a dev server bound to `localhost` listens on one of them only).
 */
export class UpstreamHosts {
  private last: string | undefined;

  constructor(private readonly configured: () => string | undefined) {}

  list(): readonly string[] {
    const upstream = this.configured();
    if (upstream !== undefined) return [upstream];
    return this.last === '::1' ? IPV6_FIRST : IPV4_FIRST;
  }

  /** The address that accepted a dial: tried first next time. */
  answered(host: string): void {
    this.last = host;
  }
}

const IPV4_FIRST = [DEFAULT_UPSTREAM_HOST, '::1'] as const;
const IPV6_FIRST = ['::1', DEFAULT_UPSTREAM_HOST] as const;

/** Connect errors that mean "this address family is not usable here", not "nothing listens". */
const FAMILY_MISSING = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT', 'ENETUNREACH']);

/** The kernel's ephemeral port range (Linux; elsewhere the IANA one), read once. */
const EPHEMERAL_PORTS = ((): [number, number] => {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux.
  }
  return [32768, 65535];
})();

/**
 * Only a connect to a port in the ephemeral range can be given that same port as its source, so
 * dev-server ports (3000, 8001, 5432…) skip the check and its address lookups (syscalls).
 */
export function mayConnectToItself(port: number): boolean {
  return port >= EPHEMERAL_PORTS[0] && port <= EPHEMERAL_PORTS[1];
}

/** True for a loopback socket, connected to `port`, that is connected to itself (same address and port on both ends). */
export function isSelfConnection(socket: Socket, port: number): boolean {
  if (!mayConnectToItself(port)) return false;
  // The remote port is `port`: one getsockname settles nearly every case, getpeername only a match.
  return socket.localPort === port && socket.localAddress === socket.remoteAddress;
}
