// The run-time guard against a service whose upstream is norikae-splice itself (an upstream spelt
// `Localhost`, `127.1`, the machine's own name… that the config check did not see through): each
// connection would dial norikae again, which would dial again, until every descriptor is gone.
// Every listener registers its port here; a dial to one of those ports records the local address
// of its socket; a connection accepted from one of those addresses came from us, and is refused.
// Process-wide, so two servers in one process looping into each other are caught too. It costs
// nothing while no dial goes to a port of ours.

import type { Server, Socket } from 'node:net';

/** Ports our listeners are bound to (a count: two listeners may share a port on two addresses). */
const ownPorts = new Map<number, number>();
/** `address port` of the local end of each open upstream socket connected to one of our ports. */
const ownDials = new Set<string>();
/** Dials to one of our ports not yet connected (their local port is not known yet). */
let pendingOwnDials = 0;

/** Records `server`'s port while it listens. */
export function registerListener(server: Server): void {
  const address = server.address();
  if (address === null || typeof address === 'string') return;
  const { port } = address;
  ownPorts.set(port, (ownPorts.get(port) ?? 0) + 1);
  server.once('close', () => {
    const count = (ownPorts.get(port) ?? 1) - 1;
    if (count === 0) ownPorts.delete(port);
    else ownPorts.set(port, count);
  });
}

/** Whether `port` is one a listener of ours is bound to. */
export function isOwnPort(port: number): boolean {
  return ownPorts.has(port);
}

/**
 * Called when a dial to `port` starts: when the port is one of ours, returns what to call once
 * the socket connected (or failed: `undefined`); otherwise nothing, and costs nothing more.
 */
export function watchDial(port: number): ((socket: Socket | undefined) => void) | undefined {
  if (!ownPorts.has(port)) return undefined;
  pendingOwnDials++;
  return (socket) => {
    pendingOwnDials--;
    if (socket === undefined || socket.localPort === undefined) return;
    const key = endpoint(socket.localAddress, socket.localPort);
    ownDials.add(key);
    socket.on('close', () => ownDials.delete(key));
  };
}

/** Whether a dial to one of our ports is open or under way: only then is an accepted connection worth checking. */
export function loopSuspected(): boolean {
  return ownDials.size > 0 || pendingOwnDials > 0;
}

/** Whether `client`, accepted by one of our listeners, is the upstream socket of a dial of ours. */
export function isOwnDial(client: Socket): boolean {
  if (ownDials.size === 0) return false;
  return ownDials.has(endpoint(client.remoteAddress, client.remotePort));
}

/** `address port`, an IPv4-mapped address (`::ffff:127.0.0.1`, as a dual-stack listener sees IPv4) as the IPv4 one. */
function endpoint(address: string | undefined, port: number | undefined): string {
  return `${address?.startsWith('::ffff:') ? address.slice(7) : address} ${port}`;
}
