// /proc/net/tcp{,6} read back: real sockets of this process, found with their addresses, state and uid.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { addressKey, TCP_LISTEN, tcpSockets, tcpSocketsAsync } from '../lib/proc-net.js';
import { closeServer } from './helpers.js';

test('a listener on 127.0.0.1 and on ::1, and both ends of a connection, are listed as Node shows them', async (t) => {
  for (const host of ['127.0.0.1', '::1']) {
    const server = createServer();
    server.listen(0, host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const client = connect({ host, port });
    // The client goes first: a server closes only once its connections have.
    t.after(() => {
      client.destroy();
      return closeServer(server);
    });
    await once(client, 'connect');
    const sockets = await tcpSocketsAsync();
    const listening = sockets.find((socket) => socket.local.port === port && socket.state === TCP_LISTEN);
    assert.deepEqual(listening?.local, { host, port });
    assert.equal(listening?.uid, process.getuid!());
    const clientEnd = tcpSockets().find((socket) => socket.local.port === client.localPort && socket.remote.port === port);
    assert.deepEqual(clientEnd?.remote, { host, port }, `${host}: the client's socket names the server as its remote end`);
    assert.equal(addressKey(clientEnd!.local.host), addressKey(client.localAddress!));
  }
});

test('addressKey spells an IPv4 address and its IPv4-mapped IPv6 form alike', () => {
  assert.equal(addressKey('127.0.0.1'), addressKey('::ffff:127.0.0.1'));
  assert.equal(addressKey('::1'), addressKey('0:0:0:0:0:0:0:1'));
  assert.notEqual(addressKey('127.0.0.1'), addressKey('::1'));
});
