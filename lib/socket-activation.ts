// Listening sockets handed over by systemd (socket activation, the sd_listen_fds protocol): fds
// from 3 on, LISTEN_FDS of them, for the process LISTEN_PID names, LISTEN_FDNAMES saying which is
// which. systemd holds the ports (80 and 443 too, as root) and starts norikae-splice on the first
// connection, as xinetd did. Each socket is matched to a listen address of the config by its name
// (`http-8080`, `tcp-pg-5433`, see listenerFdName) and by the address it is bound to (read from
// /proc); SpliceServer then listens on it instead of binding. A socket no address claims is closed.

import { closeSync, readlinkSync } from 'node:fs';
import type { ListenAddress } from './address.js';
import type { PremadeListeners } from './listen.js';
import { tcpSockets } from './proc-net.js';

/** The first descriptor passed (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;
/** The names listenerFdName gives. */
const FD_NAME = /^(http-\d+|tcp-.+-\d+)$/;

/** One socket systemd passed. */
export interface InheritedSocket {
  fd: number;
  /** Its FileDescriptorName= ("unknown" when systemd was given none). */
  name: string;
  /** Where it is bound, read from /proc; undefined when that cannot be read. */
  address: ListenAddress | undefined;
}

/**
 * The name a listener's socket gets in the socket unit (FileDescriptorName=): `http-PORT` for an
 * HTTP listen address, `tcp-SERVICE-PORT` for a service's own `listen`. systemd allows no ":" in
 * these names, so the host is not in it: the socket's bound address tells the hosts apart.
 */
export function listenerFdName(address: ListenAddress, service?: string): string {
  return service === undefined ? `http-${address.port}` : `tcp-${service}-${address.port}`;
}

/**
 * The sockets passed to this process by socket activation (none when LISTEN_PID names another
 * process, or nothing was passed). The variables are removed from `env` either way, so the
 * services norikae launches do not take them for their own.
 */
export function inheritedSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): InheritedSocket[] {
  const { LISTEN_FDS: count, LISTEN_PID: forPid, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || forPid === undefined || Number(forPid) !== pid) return [];
  const n = Number(count);
  if (!Number.isInteger(n) || n <= 0) return [];
  const nameList = names?.split(':') ?? [];
  return Array.from({ length: n }, (_, i) => ({ fd: FIRST_FD + i, name: nameList[i] ?? 'unknown', address: socketAddress(FIRST_FD + i) }));
}

/**
 * The sockets passed, offered to SpliceServer by listen address: `take` hands each out once, to
 * the address whose name and bound address it has; `closeUnclaimed` closes the rest.
 */
export class InheritedListeners implements PremadeListeners {
  private readonly unclaimed: InheritedSocket[];

  constructor(readonly sockets: InheritedSocket[]) {
    this.unclaimed = [...sockets];
  }

  take(address: ListenAddress, service?: string): { fd: number } | undefined {
    const name = listenerFdName(address, service);
    // Its name, and the address it is bound to when /proc says; a socket named otherwise (by
    // hand, or not at all) by its bound address alone.
    const index = this.unclaimed.findIndex((socket) => (socket.address === undefined
      ? socket.name === name
      : (socket.name === name || !FD_NAME.test(socket.name)) && sameAddress(socket.address, address)));
    if (index === -1) return undefined;
    return { fd: this.unclaimed.splice(index, 1)[0]!.fd };
  }

  /** Closes the sockets no listen address took; returns them, for the log. */
  closeUnclaimed(): InheritedSocket[] {
    const rest = this.unclaimed.splice(0);
    for (const socket of rest) {
      try {
        closeSync(socket.fd);
      } catch {
        // already closed: nothing holds it
      }
    }
    return rest;
  }
}

/** Whether a bound address is the one configured (`localhost` is bound as loopback, 127.0.0.1 or ::1). */
function sameAddress(bound: ListenAddress, configured: ListenAddress): boolean {
  if (bound.port !== configured.port && configured.port !== 0) return false;
  if (configured.host === 'localhost') return bound.host === '127.0.0.1' || bound.host === '::1';
  return bound.host === configured.host;
}

/** The local address of the listening TCP socket `fd` of this process: its inode in /proc/net/tcp{,6}. */
function socketAddress(fd: number): ListenAddress | undefined {
  let inode: string | undefined;
  try {
    inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
  return inode === undefined ? undefined : tcpSockets().find((socket) => socket.inode === inode)?.local;
}
