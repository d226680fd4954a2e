// A service whose upstream is norikae-splice itself, spelt so that the config check does not see
// it: at run time, a connection that comes from a dial of ours is refused (508 on HTTP, a reset
// on raw TCP), instead of dialling again until every descriptor is gone.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { closed, connectTo, delay, freePort, getHead, parseResponse, readAll, waitFor } from './helpers.js';

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** A splicer on `config` without the config's address check (the spellings here are what it may miss). */
async function loopingSplicer(t: TestContext, toml: string): Promise<{ log: ReturnType<typeof memoryLog> }> {
  const config = parseConfig(toml, '/test/norikae.toml', { checkAddresses: false });
  const log = memoryLog();
  const supervisor = new ServiceSupervisor(config, { log });
  const splicer = new SpliceServer(config, { log, connector: supervisor });
  t.after(async () => {
    await splicer.close();
    await supervisor.stopAll();
  });
  await splicer.listen();
  return { log };
}

/** Everything the peer sends until it closes, or what came within `ms` (then it is destroyed). */
async function readWithin(t: TestContext, port: number, request: string, ms: number): Promise<Buffer> {
  const socket = await connectTo(t, port);
  socket.on('error', () => {});
  const reply = readAll(socket).catch(() => Buffer.alloc(0));
  socket.write(request);
  const timer = setTimeout(() => socket.destroy(), ms);
  const bytes = await reply;
  clearTimeout(timer);
  return bytes;
}

describe('a service that loops back into norikae-splice', () => {
  for (const spelling of ['127.0.0.1', 'Localhost', '127.1', '2130706433', '::ffff:127.0.0.1']) {
    test(`HTTP, upstream = "${spelling}": one request gets 508 Loop Detected, and the descriptors stay where they were`, async (t) => {
      const port = await freePort();
      await loopingSplicer(t, `listen = "127.0.0.1:${port}"\n[service.app]\nport = ${port}\nupstream = "${spelling}"\n`);
      const before = openDescriptors();
      const response = parseResponse(await readWithin(t, port, getHead('app.localhost'), 3000));
      assert.equal(response.status, 508, response.body);
      assert.match(response.body, /the upstream of app \(port \d+\) is norikae-splice itself/);
      await waitFor(() => openDescriptors() <= before + 2, `the descriptors to come back to ${before} (now ${openDescriptors()})`, 5000);
    });
  }

  test('raw TCP, a service listener whose upstream is that listener: the connection is reset, the log says why, the descriptors stay flat', async (t) => {
    const port = await freePort();
    const { log } = await loopingSplicer(t, `listen = "127.0.0.1:0"\n[service.db]\nlisten = "127.0.0.1:${port}"\nport = ${port}\nupstream = "127.1"\n`);
    const before = openDescriptors();
    const socket = await connectTo(t, port);
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), 3000);
    await closed(socket);
    clearTimeout(timer);
    await waitFor(() => log.lines.some((line) => /db: a TCP connection was dropped: the upstream of db \(port \d+\) is norikae-splice itself/.test(line)),
      'the log line');
    await delay(200);
    await waitFor(() => openDescriptors() <= before + 2, `the descriptors to come back to ${before} (now ${openDescriptors()})`, 5000);
  });
});
