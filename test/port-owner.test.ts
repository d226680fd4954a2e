// The bind probe that spares a launch the full /proc search for the holder of its port.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { findPortOwner, portIsBindable } from '../lib/port-owner.js';
import { closeServer, freePort } from './helpers.js';

describe('portIsBindable', () => {
  test('a port nothing holds is bindable, and the probe leaves it free', async () => {
    const port = await freePort();
    assert.equal(await portIsBindable(port), true);
    // Twice: the first probe closed its listener.
    assert.equal(await portIsBindable(port), true);
    assert.equal(findPortOwner(port), undefined);
  });

  for (const host of ['127.0.0.1', '127.0.0.2', '0.0.0.0']) {
    test(`a port listened on at ${host} is not bindable, and findPortOwner names this process`, async (t) => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      t.after(() => closeServer(server));
      const { port } = server.address() as { port: number };
      assert.equal(await portIsBindable(port), false);
      assert.equal(findPortOwner(port)?.pid, process.pid);
    });
  }

  test('a port listened on at ::1 only is not bindable', async (t) => {
    const server = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '::1', resolve);
      });
    } catch (err) {
      t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
      return;
    }
    t.after(() => closeServer(server));
    assert.equal(await portIsBindable((server.address() as { port: number }).port), false);
  });
});
