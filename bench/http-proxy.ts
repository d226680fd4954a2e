// The reverse proxy a Node developer writes in a quarter of an hour: `http-proxy` with `ws: true`
// and a keep-alive agent, one target, measured as a peer of norikae. It parses every request and
// response (node:http), which is the cost norikae's splice avoids. Its own process, spawned by
// bench/peers.ts with bench/probe.ts preloaded; reports its port over IPC.
// Usage: node http-proxy.js UPSTREAM_PORT

import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import httpProxy from 'http-proxy';

const target = `http://127.0.0.1:${Number(process.argv[2])}`;
const proxy = httpProxy.createProxyServer({ target, ws: true, agent: new Agent({ keepAlive: true, maxSockets: 256 }) });
proxy.on('error', (_err, _req, res) => {
  // `res` is a Socket for a failed upgrade, a ServerResponse otherwise.
  if ('writeHead' in res && !res.headersSent) res.writeHead(502).end();
  else res.destroy();
});
const server = createServer((req, res) => proxy.web(req, res));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
// Idle keep-alive connections must survive the idle-connection measurement.
server.keepAliveTimeout = 10 * 60_000;

server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port });
});
// The bench is gone (even SIGKILLed): do not outlive it.
process.on('disconnect', () => process.exit(0));
