// The naive Node splicer, measured next to norikae as the floor of any `net` + `pipe` proxy on
// the machine: accept, connect to the upstream, pipe both ways; an error on one side destroys the
// other, a close ends it once its writes are out. No parsing, no routing, nothing else. Its own
// process, spawned by targets.ts (which preloads bench/probe.ts for the heap figure); reports its
// port over IPC.
// Usage: node node-floor.js UPSTREAM_PORT

import { connect, createServer, type AddressInfo } from 'node:net';

const upstreamPort = Number(process.argv[2]);

const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  // Needed for it not to leak: when one side closes, pipe() unpipes and pauses the other, which
  // then never reads its peer's FIN and keeps its descriptor. Close it once its writes are out.
  client.on('close', () => upstream.destroySoon());
  upstream.on('close', () => client.destroySoon());
  client.pipe(upstream);
  upstream.pipe(client);
});

server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port });
});
// The bench is gone (even SIGKILLed): do not outlive it.
process.on('disconnect', () => process.exit(0));
