// The upstream every target is measured against, run as its own process (forked by targets.ts)
// so it never shares an event loop with the proxy or the load generator. One node:http server:
// `/` answers a small body, `/1mib` 1 MiB; a `ws` echo on the same port. It counts accepted
// connections and tells the parent over IPC, which is how "a new connection per request" is verified.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const small = Buffer.from('hello from the bench upstream\n');
const big = Buffer.alloc(1024 * 1024, 'x');
let accepts = 0;

const server = createServer((req, res) => {
  const body = req.url === '/1mib' ? big : small;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
// Idle keep-alive connections must survive the 10 000-connection memory measurement.
server.keepAliveTimeout = 10 * 60_000;
server.on('connection', () => accepts++);
// Said, not swallowed: a full run once found this server hanging up on every request.
server.on('clientError', (err, socket) => {
  if (!socket.destroyed) process.stderr.write(`upstream: client error ${(err as NodeJS.ErrnoException).code ?? err.message}\n`);
  socket.destroy();
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('error', () => ws.terminate());
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
});

// The port the bench chose (below the ephemeral range, like a dev server's), or any.
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port });
});
process.on('message', (message) => {
  if (message === 'accepts') process.send!({ type: 'accepts', accepts });
});
// The bench is gone (even SIGKILLed): do not outlive it.
process.on('disconnect', () => process.exit(0));
