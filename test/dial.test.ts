// dial.ts against real listeners on loopback: which host answered, what a refusal looks like, and
// when the self-connect check applies.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { dial, dialFirst, isSelfConnection, mayConnectToItself } from '../lib/dial.js';
import { UpstreamConnectError } from '../lib/errors.js';
import { closeServer, freePort } from './helpers.js';

test('dialFirst connects to the first host that accepts and says which one it was', async (t) => {
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen({ host: '::1', port: 0, ipv6Only: true }, resolve));
  t.after(() => closeServer(server));
  const { port } = server.address() as AddressInfo;

  const { socket, host } = await dialFirst(['127.0.0.1', '::1'], port, 2000);
  try {
    assert.equal(host, '::1', '127.0.0.1 refused, so ::1 answered');
    assert.equal(socket.remoteAddress, '::1');
    assert.equal(socket.remotePort, port);
  } finally {
    // Before the server's close, which waits for its connections.
    socket.destroy();
  }
});

test('a connected socket keeps no listener of the dial: they would hold its closures as long as the connection lasts', async (t) => {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => closeServer(server));
  const socket = await dial('127.0.0.1', (server.address() as AddressInfo).port, 2000);
  try {
    assert.equal(socket.listenerCount('connect'), 0);
    assert.equal(socket.listenerCount('error'), 1, 'only the shared error logger');
  } finally {
    socket.destroy();
  }
});

test('a port nothing listens on is refused with an UpstreamConnectError naming ECONNREFUSED', async () => {
  const port = await freePort();
  await assert.rejects(dial('127.0.0.1', port, 2000), (err: unknown) => {
    assert.ok(err instanceof UpstreamConnectError);
    assert.equal(err.reason, 'ECONNREFUSED');
    return true;
  });
  await assert.rejects(dialFirst(['127.0.0.1', '::1'], port, 2000), (err: unknown) => err instanceof UpstreamConnectError && err.reason === 'ECONNREFUSED');
});

test('a fallback host the machine cannot reach does not hide the refusal of the first (IPv6 switched off)', async () => {
  const port = await freePort();
  // TCP to a multicast address always fails with ENETUNREACH (the kernel refuses it before any
  // packet), as a connect to ::1 does where IPv6 is off: a stand-in that needs no namespace.
  const refused = (err: unknown): boolean => err instanceof UpstreamConnectError && err.reason === 'ECONNREFUSED' && err.host === '127.0.0.1';
  await assert.rejects(dialFirst(['127.0.0.1', 'ff02::1'], port, 2000), refused);
  await assert.rejects(dialFirst(['127.0.0.1', '224.0.0.1'], port, 2000), refused);
  // The first host's own failure, when it is not a refusal, is the answer at once.
  await assert.rejects(dialFirst(['ff02::1', '127.0.0.1'], port, 2000), (err: unknown) => err instanceof UpstreamConnectError && err.reason === 'ENETUNREACH');
});

test('a socket connected to itself is told apart from one connected to a listener', async (t) => {
  // Bound to the port it connects to, with nothing listening: TCP simultaneous open with itself.
  const port = await freePort();
  const self = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: port });
  try {
    await new Promise<void>((resolve, reject) => self.once('connect', resolve).once('error', reject));
    assert.equal(isSelfConnection(self, port), true);
  } finally {
    self.destroy();
  }

  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => closeServer(server));
  const listening = (server.address() as AddressInfo).port;
  const other = connect({ host: '127.0.0.1', port: listening });
  try {
    await new Promise<void>((resolve, reject) => other.once('connect', resolve).once('error', reject));
    assert.equal(isSelfConnection(other, listening), false);
  } finally {
    other.destroy();
  }
});

test('the self-connect check applies exactly to ports in the kernel\'s ephemeral range', () => {
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  assert.equal(mayConnectToItself(low), true);
  assert.equal(mayConnectToItself(high), true);
  assert.equal(mayConnectToItself(low - 1), false);
  if (high < 65535) assert.equal(mayConnectToItself(high + 1), false);
  // A typical dev-server port, below the range on Linux's default (32768–60999).
  if (low > 8001) assert.equal(mayConnectToItself(8001), false);
});
