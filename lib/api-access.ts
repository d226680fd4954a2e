// Who may use the control API (services' output, events, start/stop): only the user who runs
// norikae-splice. On Linux the kernel says who is at the other end of a local TCP connection:
// /proc/net/tcp and /proc/net/tcp6 list every socket with the uid that made it, and the client's
// is the one whose local address is our peer's and whose remote address is ours. Where that is not
// known (another OS, another network namespace, a connection from another machine) the client
// must show the key norikae-splice writes at start into its state folder, mode 0600: the CLI
// sends it as `Authorization: Bearer KEY`, and a browser opened by `norikae-splice dashboard`
// trades it once (POST /api/session) for an HttpOnly, SameSite=Strict cookie.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { replaceFile } from './atomic-file.js';
import { addressKey, tcpSocketsAsync } from './proc-net.js';

/** The key file of the norikae running `configFile` (one per config file, like its launch record). */
export function apiKeyFile(stateDir: string, configFile: string): string {
  return join(stateDir, `api-key-${configId(configFile)}`);
}

/** Names a config file in file and cookie names: the same 12 hex digits as its launch record's. */
export function configId(configFile: string): string {
  return createHash('sha256').update(configFile).digest('hex').slice(0, 12);
}

/** A new key, written to `file` (mode 0600, in a 0700 folder) before anyone can ask for it. */
export function createApiKey(file: string): string {
  const key = randomBytes(32).toString('base64url');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // Not flushed to disk: it is written before norikae says it listens, and a new one is made at
  // every start, so the next start replaces one a crash lost.
  replaceFile(file, `${key}\n`, 0o600, { flush: false });
  return key;
}

/** The key in `file`, or undefined when it cannot be read (then only the uid check can let the CLI in). */
export function readApiKey(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class ApiAccess {
  /** The cookie a browser holds the key in; named per config, since cookies do not tell ports apart. */
  readonly cookieName: string;
  private readonly key: Buffer;
  private readonly peers = new WeakMap<Socket, Promise<number | undefined>>();

  /** `key`: what the CLI and the browser must show when the uid is not known. */
  constructor(key: string, id: string, private readonly uid: number | undefined = process.getuid?.()) {
    this.key = Buffer.from(key);
    this.cookieName = `norikae-key-${id}`;
  }

  /** Whether `req` comes from our user: by its key (header or cookie), else by its connection's uid. */
  async allows(req: IncomingMessage): Promise<boolean> {
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && this.isKey(bearer)) return true;
    const cookie = cookieValue(req.headers.cookie, this.cookieName);
    if (cookie !== undefined && this.isKey(cookie)) return true;
    if (this.uid === undefined) return false;
    let peer = this.peers.get(req.socket);
    if (peer === undefined) {
      peer = peerUid(req.socket);
      this.peers.set(req.socket, peer);
    }
    return (await peer) === this.uid;
  }

  /** Whether `text` is the key (compared in constant time). */
  isKey(text: string): boolean {
    const given = Buffer.from(text);
    return given.length === this.key.length && timingSafeEqual(given, this.key);
  }

  /** The Set-Cookie value that lets a browser in: the key, unreadable to scripts, never sent by another site's requests. */
  sessionCookie(key: string): string {
    return `${this.cookieName}=${key}; Path=/; HttpOnly; SameSite=Strict`;
  }
}

/** One cookie's value from a Cookie header. */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The uid of the process at the other end of a TCP connection on this machine (Linux), or
 * undefined when the kernel does not list its socket to us: another OS, or another machine.
 */
export async function peerUid(socket: Socket): Promise<number | undefined> {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
  const peer = addressKey(remoteAddress);
  const us = addressKey(localAddress);
  // The peer's own socket: local end the client's address, remote end ours.
  const found = (await tcpSocketsAsync()).find(({ local, remote }) => local.port === remotePort && remote.port === localPort
    && addressKey(local.host) === peer && addressKey(remote.host) === us);
  return found?.uid;
}
