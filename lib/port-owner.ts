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
