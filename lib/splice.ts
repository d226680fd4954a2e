// Two connected sockets → one two-way pipe. Bytes pass unchanged with backpressure (`pipe`), a FIN
// travels alone (both sockets are half-open capable), and when one side is gone the other follows:
// at once after a reset or error, after flushing what it still has to write after a clean close.

import type { Socket } from 'node:net';
import type { Transform } from 'node:stream';
import { createDebug } from './packages.js';

const debug = createDebug('norikae:splice');

/**
 * Writes `head` (the bytes already read from the client) to `upstream`, then pipes both ways.
 * The client must be paused with no 'data' listener, so nothing is read in between. `through`, if
 * given, is a stage in the client→upstream direction (forwarded.ts); an error there resets both.
 */
export function spliceSockets(client: Socket, upstream: Socket, head: readonly Uint8Array[], through?: Transform): void {
  if (through !== undefined) {
    spliceThrough(client, upstream, head, through);
    return;
  }
  if (head.length === 1) {
    upstream.write(head[0]!);
  } else if (head.length > 1) {
    upstream.cork();
    for (const chunk of head) upstream.write(chunk);
    upstream.uncork();
  }
  client.pipe(upstream);
  upstream.pipe(client);
  // `on`, not `once`: 'close' comes once anyway, and once() costs a wrapper per connection.
  client.on('close', (hadError) => closePeer(upstream, hadError));
  upstream.on('close', (hadError) => closePeer(client, hadError));
}

function spliceThrough(client: Socket, upstream: Socket, head: readonly Uint8Array[], through: Transform): void {
  through.on('error', (err) => {
    debug('client→upstream stage: %s', err.message);
    client.destroy();
    upstream.resetAndDestroy();
  });
  for (const chunk of head) through.write(chunk);
  client.pipe(through).pipe(upstream);
  upstream.pipe(client);
  client.on('close', (hadError) => {
    // After the client's FIN, the stage ends the upstream itself once it has passed on what it holds.
    if (hadError || !through.writableEnded) closePeer(upstream, hadError);
  });
  upstream.on('close', (hadError) => {
    through.destroy();
    closePeer(client, hadError);
  });
}

/** How long the survivor of a closed pair may take to flush what it still has to write. */
const FLUSH_LIMIT_MS = 10_000;

/** The other side of a closed socket: reset it after an error, otherwise finish writing, then close. */
function closePeer(socket: Socket, hadError: boolean): void {
  if (socket.destroyed) return;
  if (hadError) {
    socket.resetAndDestroy();
    return;
  }
  socket.end();
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  // A peer that stops reading must not keep the socket forever.
  const timer = setTimeout(() => socket.destroy(), FLUSH_LIMIT_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
}

/**
 * The one error handler of a socket that is, or will be, spliced (a client from its accept, an
 * upstream from its connect): the 'close' that follows does the cleanup.
 */
export function logSocketError(this: Socket, err: NodeJS.ErrnoException): void {
  // The address getters are system calls: only when someone reads the debug output.
  if (debug.enabled) debug('socket %s:%s error %s', this.remoteAddress, this.remotePort, err.code ?? err.message);
}
