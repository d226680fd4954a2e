// This machine's TCP sockets as Linux lists them in /proc/net/tcp and /proc/net/tcp6: each one's
// local and remote address, state, owner's uid and inode. One reader for the three questions
// norikae asks of them: who listens on a port (port-owner.ts), which address a socket systemd
// passed is bound to (socket-activation.ts), and which user is at the other end of a loopback
// connection (api-access.ts). Elsewhere than Linux there is no such file, and no socket is listed.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';

export interface TcpSocket {
  local: { host: string; port: number };
  remote: { host: string; port: number };
  /** The `st` column: TCP_LISTEN for a listening socket. */
  state: string;
  uid: number;
  inode: string;
}

/** TCP_LISTEN in the `st` column. */
export const TCP_LISTEN = '0A';

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

/** Every TCP socket listed, IPv4 and IPv6. */
export function tcpSockets(): TcpSocket[] {
  return TABLES.flatMap((table) => {
    try {
      return parseTable(readFileSync(table, 'latin1'));
    } catch {
      return [];
    }
  });
}

/** The same, read without blocking the event loop (for a request's path). */
export async function tcpSocketsAsync(): Promise<TcpSocket[]> {
  const tables = await Promise.all(TABLES.map((table) => readFile(table, 'latin1').then(parseTable, () => [])));
  return tables.flat();
}

/** One spelling per address, to compare: IPv4 as IPv4-mapped IPv6, IPv6 as the URL standard writes it. */
export function addressKey(address: string): string {
  const v6 = isIPv4(address) ? `::ffff:${address}` : address;
  if (!isIPv6(v6)) return address;
  try {
    return new URL(`http://[${v6}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}

function parseTable(text: string): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const local = endpoint(fields[1]!);
    const remote = endpoint(fields[2]!);
    if (local === undefined || remote === undefined) continue;
    sockets.push({ local, remote, state: fields[3]!, uid: Number(fields[7]), inode: fields[9]! });
  }
  return sockets;
}

/** `HEX:PORT`; each 32-bit word of the address is printed in the host's byte order. */
function endpoint(field: string): { host: string; port: number } | undefined {
  const [hex, port] = field.split(':');
  if (hex === undefined || port === undefined || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let word = 0; word < hex.length / 8; word++) {
    const value = Number.parseInt(hex.slice(word * 8, word * 8 + 8), 16);
    if (endianness() === 'LE') bytes.writeUInt32LE(value, word * 4);
    else bytes.writeUInt32BE(value, word * 4);
  }
  return { host: hostText(bytes), port: Number.parseInt(port, 16) };
}

/** An address as Node shows it: dotted IPv4, compressed IPv6, `::ffff:a.b.c.d` for IPv4-mapped. */
function hostText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.subarray(0, 10).every((byte) => byte === 0) && bytes.readUInt16BE(10) === 0xffff) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  const groups = (bytes.toString('hex').match(/.{4}/g) ?? []).join(':');
  return new URL(`http://[${groups}]/`).hostname.slice(1, -1);
}
