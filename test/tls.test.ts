// TLS passthrough (`tls = "passthrough"`) on the HTTP listeners: routed by SNI, never terminated.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { captureClientHello, closeServer, connectTo, delay, listenOn, readAll, startSplicer } from './helpers.js';

const cert = readFileSync(new URL('../../test/fixtures/tls/cert.pem', import.meta.url));
const key = readFileSync(new URL('../../test/fixtures/tls/key.pem', import.meta.url));

/** An HTTPS-ish upstream: TLS with the fixture certificate, answering one line per connection. */
async function startTlsUpstream(t: TestContext): Promise<number> {
  const server = createTlsServer({ cert, key }, (socket) => {
    socket.once('data', (chunk: Buffer) => socket.end(`tls upstream got ${chunk.toString().split('\r\n')[0]} for ${socket.servername}\n`));
    socket.on('error', () => {});
  });
  await listenOn(server);
  t.after(() => closeServer(server));
  return (server.address() as AddressInfo).port;
}

async function splicerFor(t: TestContext, upstreamPort: number) {
  return startSplicer(t, `[service.secure]\nhost = ["secure.localhost", "*.secure.localhost"]\nport = ${upstreamPort}\ntls = "passthrough"\n`);
}

function tlsRequest(t: TestContext, port: number, servername: string, options: ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, servername, ca: cert, ...options });
    t.after(() => socket.destroy());
    let text = '';
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\n\r\n`));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('TLS passthrough', () => {
  test('a ClientHello is routed by its SNI name; the upstream terminates TLS with its own certificate', async (t) => {
    const { port } = await splicerFor(t, await startTlsUpstream(t));
    assert.equal(await tlsRequest(t, port, 'secure.localhost'), 'tls upstream got GET / HTTP/1.1 for secure.localhost\n');
    assert.equal(await tlsRequest(t, port, 'api.secure.localhost'), 'tls upstream got GET / HTTP/1.1 for api.secure.localhost\n');
  });

  test('an unknown SNI name or none gets an unrecognized_name alert', async (t) => {
    const { port } = await splicerFor(t, await startTlsUpstream(t));
    await assert.rejects(tlsRequest(t, port, 'other.localhost'), /unrecognized name/i);
    await assert.rejects(tlsRequest(t, port, ''), /unrecognized name/i);
  });

  test('a ClientHello split across many reads reaches the upstream byte for byte', async (t) => {
    // A real ClientHello, replayed through the splicer in small pieces.
    const hello = await captureClientHello({ servername: 'secure.localhost' });

    const received: Buffer[] = [];
    const upstream = createNetServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('end', () => socket.end());
    });
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const { port } = await splicerFor(t, (upstream.address() as AddressInfo).port);
    const client = await connectTo(t, port, { allowHalfOpen: true });
    const done = readAll(client);
    for (let offset = 0; offset < hello.length; offset += 7) {
      client.write(hello.subarray(offset, offset + 7));
      await delay(1);
    }
    client.end();
    await done;
    assert.ok(Buffer.concat(received).equals(hello));
  });

  test('a malformed ClientHello is closed without an answer', async (t) => {
    const { port } = await splicerFor(t, await startTlsUpstream(t));
    const client = await connectTo(t, port);
    const reply = readAll(client);
    // A handshake record whose message is not a ClientHello.
    client.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]));
    assert.equal((await reply).length, 0);
  });

  test('a ClientHello cut short, by a FIN or by head_timeout, is closed without an HTTP answer', async (t) => {
    const hello = await captureClientHello({ servername: 'secure.localhost' });
    const { port } = await startSplicer(t, `[service.secure]\nhost = "secure.localhost"\nport = ${await startTlsUpstream(t)}\ntls = "passthrough"\n`, { top: 'head_timeout = 0.5' });
    const cut = await connectTo(t, port, { allowHalfOpen: true });
    const cutReply = readAll(cut);
    cut.end(hello.subarray(0, 100));
    assert.equal((await cutReply).length, 0);
    const stalled = await connectTo(t, port);
    const stalledReply = readAll(stalled);
    stalled.write(hello.subarray(0, 100));
    assert.equal((await stalledReply).length, 0);
  });

  test('a ClientHello larger than max_head_size (an HTTP limit) is still routed', async (t) => {
    // Many ALPN names make the hello as large as a browser's with post-quantum key shares (~2 KB).
    const options = { ALPNProtocols: Array.from({ length: 80 }, (_, i) => `protocol-${i}-padding`) };
    const hello = await captureClientHello({ servername: 'secure.localhost', ...options });
    assert.ok(hello.length > 1500, `the hello is ${hello.length} bytes`);
    const { port } = await startSplicer(t, `[service.secure]\nhost = "secure.localhost"\nport = ${await startTlsUpstream(t)}\ntls = "passthrough"\n`, { top: 'max_head_size = 1024' });
    assert.equal(await tlsRequest(t, port, 'secure.localhost', options), 'tls upstream got GET / HTTP/1.1 for secure.localhost\n');
  });

  test('plain HTTP and TLS share the listener', async (t) => {
    const { port } = await splicerFor(t, await startTlsUpstream(t));
    const plain = await connectTo(t, port);
    const reply = readAll(plain);
    plain.write('GET / HTTP/1.1\r\nHost: nothing.localhost\r\n\r\n');
    assert.match((await reply).toString(), /^HTTP\/1\.1 404 /);
    assert.match(await tlsRequest(t, port, 'secure.localhost'), /^tls upstream got/);
  });
});
