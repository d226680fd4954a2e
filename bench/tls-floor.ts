// The naive Node TLS terminator, measured next to norikae's HTTPS as the floor of any Node proxy
// that decrypts: `tls.createServer` with the same certificate and key as norikae's leaf for the
// name, then, like bench/node-floor.ts, connect to the upstream and pipe both ways. No SNI
// routing, no header rewriting, nothing else. Its own process, spawned by bench/tls.ts; reports
// its port over IPC.
// Usage: node tls-floor.js UPSTREAM_PORT CERT_AND_KEY_PEM

import { readFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { createServer } from 'node:tls';

const upstreamPort = Number(process.argv[2]);
const pem = readFileSync(process.argv[3]!, 'utf8');

// The same ALPN offer as norikae (lib/tls-edge.ts).
const server = createServer({ cert: pem, key: pem, ALPNProtocols: ['http/1.1'], noDelay: true }, (client) => {
  const upstream = connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroySoon());
  upstream.on('close', () => client.destroySoon());
  client.pipe(upstream);
  upstream.pipe(client);
});
// A failed handshake is the client's business, not a crash.
server.on('tlsClientError', () => {});

server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port });
});
// The bench is gone (even SIGKILLed): do not outlive it.
process.on('disconnect', () => process.exit(0));
