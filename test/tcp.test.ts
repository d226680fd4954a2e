// Raw TCP services: a service's own `listen` port, spliced with no parsing at all.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { closed, closeServer, connectTo, delay, freePort, listenOn, nextData, readAll, startSplicer } from './helpers.js';

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
    const greeting = await nextData<string>(socket, 'the greeting');
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
    const greeting = await nextData<string>(socket, 'the greeting');
    assert.match(greeting, /^hello/);
    const [http] = h.server.addresses();
    const viaHttp = await connectTo(t, http!.port);
    viaHttp.write('GET / HTTP/1.1\r\nHost: both.localhost\r\n\r\n');
    viaHttp.setEncoding('utf8');
    const first = await nextData<string>(viaHttp, 'the greeting by host');
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

  test('a reload may narrow or re-spell a listen address on the same port; a refused edit listens where it did before', async (t) => {
    const upstream = createServer((socket) => socket.end('from upstream\n'));
    await listenOn(upstream);
    t.after(() => closeServer(upstream));
    const held = createServer();
    await listenOn(held);
    t.after(() => closeServer(held));
    const port = await freePort();
    const table = (listen: string): string => `[service.svc]\nlisten = "${listen}"\nport = ${(upstream.address() as AddressInfo).port}\n`;
    const { splicer } = await startSplicer(t, table(`0.0.0.0:${port}`));
    const reconfigure = (tables: string): Promise<void> => splicer.reconfigure(parseConfig(`listen = "127.0.0.1:0"\n${tables}`, '/test/norikae.toml'));
    const greeting = async (): Promise<string> => (await readAll(await connectTo(t, port))).toString();
    assert.equal(await greeting(), 'from upstream\n');

    for (const listen of [`127.0.0.1:${port}`, `localhost:${port}`, `0.0.0.0:${port}`, `127.0.0.1:${port}`]) {
      await reconfigure(table(listen));
      assert.deepEqual(splicer.serviceAddresses('svc').map(({ port: bound }) => bound), [port], listen);
      assert.equal(await greeting(), 'from upstream\n', listen);
    }

    // The move to 0.0.0.0 binds, then b's port is taken: the edit is refused and svc is back on 127.0.0.1.
    const heldPort = (held.address() as AddressInfo).port;
    await assert.rejects(reconfigure(`${table(`0.0.0.0:${port}`)}[service.b]\nlisten = ${heldPort}\nport = 1\n`), /already in use/);
    assert.deepEqual(splicer.serviceAddresses('svc'), [{ host: '127.0.0.1', port }]);
    assert.equal(await greeting(), 'from upstream\n');
  });
});
