// Raw TCP services: a service's own `listen` port, spliced with no parsing at all.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { closed, connectTo, delay, freePort, readAll } from './helpers.js';

const GREETER = fileURLToPath(new URL('./fixtures/tcp-greeter.js', import.meta.url));

async function start(t: TestContext, services: (listenPort: number, recordFile: string) => string) {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-tcp-'));
  const recordFile = join(dir, 'launches.txt');
  const listenPort = await freePort();
  const config = parseConfig(`listen = "127.0.0.1:0"\nlog_dir = "${dir}/logs"\n${services(listenPort, recordFile)}`, join(dir, 'norikae.toml'));
  const log = memoryLog();
  const supervisor = new ServiceSupervisor(config, { log });
  const server = new SpliceServer(config, { log, connector: supervisor });
  await server.listen();
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  const launches = (): number => (existsSync(recordFile) ? readFileSync(recordFile, 'utf8').trim().split('\n').length : 0);
  return { listenPort, log, launches, server };
}

describe('raw TCP services', () => {
  test('launched on the first connection; the server speaks first', async (t) => {
    const upstream = await freePort();
    const h = await start(t, (listen, record) => `[service.greeter]\nlisten = ${listen}\nport = ${upstream}\ncommand = "node ${GREETER} --record ${record}"\n`);
    const socket = await connectTo(t, h.listenPort);
    socket.setEncoding('utf8');
    const [greeting] = (await once(socket, 'data')) as [string];
    assert.match(greeting, /^hello \d+\n/);
    assert.equal(h.launches(), 1);
  });

  test('multi-MiB echo with half-close: everything comes back after the client ends its side', async (t) => {
    const upstream = await freePort();
    const h = await start(t, (listen) => `[service.echo]\nlisten = "127.0.0.1:${listen}"\nport = ${upstream}\ncommand = "node ${GREETER}"\n`);
    const payload = randomBytes(6 * 1024 * 1024 + 5);
    const socket = await connectTo(t, h.listenPort, { allowHalfOpen: true });
    const received = readAll(socket);
    socket.end(payload);
    const all = await received;
    const text = all.toString('latin1');
    const greetingEnd = text.indexOf('\n') + 1;
    assert.match(text.slice(0, greetingEnd), /^hello \d+\n$/);
    assert.equal(text.slice(-4), 'bye\n');
    const echoed = all.subarray(greetingEnd, all.length - 4);
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  });

  test('a service may have both host and listen', async (t) => {
    const upstream = await freePort();
    const h = await start(t, (listen) => `[service.both]\nhost = "both.localhost"\nlisten = ${listen}\nport = ${upstream}\ncommand = "node ${GREETER}"\n`);
    const socket = await connectTo(t, h.listenPort);
    socket.setEncoding('utf8');
    const [greeting] = (await once(socket, 'data')) as [string];
    assert.match(greeting, /^hello/);
    const [http] = h.server.addresses();
    const viaHttp = await connectTo(t, http!.port);
    viaHttp.write('GET / HTTP/1.1\r\nHost: both.localhost\r\n\r\n');
    viaHttp.setEncoding('utf8');
    const [first] = (await once(viaHttp, 'data')) as [string];
    assert.match(first, /^hello/, 'the same upstream, reached by host');
  });

  test('a launch that fails closes the connection and logs why', async (t) => {
    const upstream = await freePort();
    const h = await start(t, (listen) => `[service.broken]\nlisten = ${listen}\nport = ${upstream}\ncommand = "exit 4"\n`);
    const socket = await connectTo(t, h.listenPort);
    socket.on('error', () => {});
    await closed(socket);
    assert.ok(h.log.lines.some((line) => /broken: a TCP connection was dropped: broken exited with code 4/.test(line)), h.log.lines.join('\n'));
  });

  test('without a command, a refused upstream closes the connection', async (t) => {
    const upstream = await freePort();
    const h = await start(t, (listen) => `[service.off]\nlisten = ${listen}\nport = ${upstream}\n`);
    const socket = await connectTo(t, h.listenPort);
    socket.on('error', () => {});
    await closed(socket);
    await delay(10);
    assert.ok(h.log.lines.some((line) => /off: a TCP connection was dropped: connecting to 127\.0\.0\.1:\d+ failed: ECONNREFUSED/.test(line)));
  });
});
