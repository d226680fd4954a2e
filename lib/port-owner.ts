// Who holds a TCP port, from /proc (Linux): the listening sockets in /proc/net/tcp{,6} on that
// local port, and the process whose /proc/PID/fd links to one of them. Used before a launch, when
// the port refused us on loopback yet something listens on it on another address (which makes a
// dev server binding 0.0.0.0 fail), so the holder is named on the error page instead of surfacing
// as EADDRINUSE deep in the child's own log. (A socket that is bound but not listening does not
// appear in /proc/net/tcp, so it cannot be named.) And a port nobody holds, for a service
// configured without one.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { DEFAULT_UPSTREAM_HOST } from './dial.js';
import { TCP_LISTEN, tcpSockets } from './proc-net.js';

export interface PortOwner {
  pid: number;
  /** The command line, arguments joined by spaces, on one line. */
  command: string;
}

/** The process listening on `port` on any address, or undefined when none can be found. */
export function findPortOwner(port: number): PortOwner | undefined {
  const inodes = socketInodes(port);
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look into
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && inodes.has(inode)) return { pid: Number(pid), command: commandLine(Number(pid)) };
    }
  }
  return undefined;
}

/** Inodes of the IPv4 and IPv6 TCP sockets listening on `port`. */
function socketInodes(port: number): Set<string> {
  return new Set(tcpSockets().filter((socket) => socket.local.port === port && socket.state === TCP_LISTEN && socket.inode !== '0').map((socket) => socket.inode));
}

function commandLine(pid: number): string {
  try {
    // Arguments may hold newlines (`python3 -c '…'`): one line reads better on a page.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').replace(/\s+/g, ' ');
  } catch {
    return '?';
  }
}

/**
 * Whether `port` can be bound on every address right now: the cheap test before a launch.
 * findPortOwner reads the kernel's whole TCP table, which on a busy machine (tens of thousands of
 * sockets in TIME_WAIT) takes tens of milliseconds of blocked event loop per launch; a bind
 * probe takes microseconds and settles the usual case, a free port. False when the bind fails for
 * any reason (then the full search names the holder, if it can). The probe listens for the
 * moment it takes to learn that; a connection in that moment is closed at once.
 */
export async function portIsBindable(port: number): Promise<boolean> {
  // `::` takes IPv4 too (dual stack); a machine without IPv6 is asked on 0.0.0.0 instead.
  const first = await bindProbe(port, '::');
  if (first === 'ok') return true;
  if (first !== 'EAFNOSUPPORT' && first !== 'EADDRNOTAVAIL') return false;
  return (await bindProbe(port, '0.0.0.0')) === 'ok';
}

/** 'ok', or the error code of listening on `host:port`. */
function bindProbe(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve('ok')));
  });
}

/** A port nothing listens on right now, for a service configured without one. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, DEFAULT_UPSTREAM_HOST, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
