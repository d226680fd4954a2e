// The dashboard host's limits: on heads after the first and on bodies, with real trickling sockets
// (head_timeout = 1 s, so every test ends within a few seconds); and on what an event-stream
// client that stops reading may cost.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';
import { SLOW_CLIENT_BYTES } from '../lib/event-stream.js';
import { closed, connectTo, delay, exchange, freePort, getHead, parseResponse, waitFor } from './helpers.js';

/** A service that prints N lines on GET /print?lines=N (fixtures/chatty-server.ts). */
const CHATTY = fileURLToPath(new URL('./fixtures/chatty-server.js', import.meta.url));

async function start(t: TestContext): Promise<number> {
  return (await startWith(t, '')).port;
}

async function startWith(t: TestContext, services: string): Promise<{ port: number; dashboard: Dashboard; supervisor: ServiceSupervisor }> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-dashboard-limits-'));
  const config = parseConfig(`listen = "127.0.0.1:0"\nhead_timeout = 1\nlog_dir = "${dir}"\n[service.db]\nport = ${await freePort()}\n${services}`, join(dir, 'norikae.toml'));
  const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
  const dashboard = new Dashboard(supervisor, { limits: () => config });
  const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard });
  const [address] = await server.listen();
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port: address!.port, dashboard, supervisor };
}

/** A raw connection to the dashboard host that records what it receives, and when it closed. */
async function open(t: TestContext, port: number): Promise<{ socket: Socket; received: () => string; closedAt: Promise<number> }> {
  const socket = await connectTo(t, port);
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => {});
  const closedAt = closed(socket).then(() => performance.now());
  return { socket, received: () => text, closedAt };
}

const FIRST = 'GET /api/services HTTP/1.1\r\nHost: norikae.localhost\r\n\r\n';

/** Writes `text` a byte every `everyMs` until the socket closes or `maxMs` passed; resolves with how long it went on. */
async function trickle(socket: Socket, text: string, everyMs: number, maxMs: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; !socket.destroyed && performance.now() - started < maxMs; i = (i + 1) % text.length) {
    socket.write(text[i]!);
    await delay(everyMs);
  }
  return performance.now() - started;
}

describe('dashboard host limits', () => {
  test('a second head trickled a byte at a time gets 408 after head_timeout, and the connection closes', async (t) => {
    const port = await start(t);
    const client = await open(t, port);
    client.socket.write(FIRST);
    for (let i = 0; i < 100 && !/\r\n\r\n\{.*\}$/s.test(client.received()); i++) await delay(20);
    assert.match(client.received(), /^HTTP\/1\.1 200/);
    const before = client.received().length;
    const lasted = await trickle(client.socket, 'GET /api/services HTTP/1.1\r\nHost: norikae.localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 200, 8000);
    await client.closedAt;
    assert.ok(lasted < 4000, `closed after ${Math.round(lasted)} ms of trickling`);
    assert.match(client.received().slice(before), /^HTTP\/1\.1 408 /);
  });

  test('an idle keep-alive connection is closed without an answer', async (t) => {
    const port = await start(t);
    const client = await open(t, port);
    const started = performance.now();
    client.socket.write(FIRST);
    for (let i = 0; i < 100 && !/\r\n\r\n\{.*\}$/s.test(client.received()); i++) await delay(20);
    const before = client.received().length;
    const closedAt = await Promise.race([client.closedAt, delay(8000).then(() => Infinity)]);
    assert.ok(closedAt - started < 4000, 'closed within a few seconds');
    assert.equal(client.received().slice(before), '', 'no 408 for a connection that sent nothing');
  });

  test('a body trickled a byte at a time gets 408 after head_timeout', async (t) => {
    const port = await start(t);
    for (const head of ['Content-Length: 1000\r\n', 'Transfer-Encoding: chunked\r\n']) {
      const client = await open(t, port);
      client.socket.write(`POST /api/services/db/stop HTTP/1.1\r\nHost: norikae.localhost\r\n${head}\r\n`);
      const body = head.startsWith('Content') ? 'a'.repeat(1000) : '1\r\na\r\n'.repeat(1000);
      const lasted = await trickle(client.socket, body, 200, 8000);
      await client.closedAt;
      assert.ok(lasted < 4000, `${head.trim()}: closed after ${Math.round(lasted)} ms of trickling`);
      assert.match(client.received(), /^HTTP\/1\.1 408 [^]*not complete within 1 s/, head);
    }
  });

  test('a body larger than the API reads is 413: declared at once, chunked once past the cap', async (t) => {
    const port = await start(t);
    const declared = await open(t, port);
    declared.socket.write('POST /api/services/db/stop HTTP/1.1\r\nHost: norikae.localhost\r\nContent-Length: 1000000\r\n\r\n');
    await Promise.race([declared.closedAt, delay(5000)]);
    assert.match(declared.received(), /^HTTP\/1\.1 413 [^]*larger than 4096 bytes/);

    const chunked = await open(t, port);
    chunked.socket.write('POST /api/services/db/stop HTTP/1.1\r\nHost: norikae.localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 10 && !chunked.socket.destroyed; i++) chunked.socket.write(`400\r\n${'b'.repeat(1024)}\r\n`);
    await Promise.race([chunked.closedAt, delay(5000)]);
    assert.match(chunked.received(), /^HTTP\/1\.1 413 /);
    assert.doesNotMatch(chunked.received(), /"service"/, 'the stop was not done');
  });

  test('an event client that stops reading costs bounded memory, and learns how many lines it missed', async (t) => {
    const { port, dashboard, supervisor } = await startWith(t, `[service.chatty]\nhost = "chatty.localhost"\nport = ${await freePort()}\ncommand = "node ${CHATTY}"\n`);
    await supervisor.start('chatty');
    const client = await open(t, port);
    client.socket.write('GET /api/events HTTP/1.1\r\nHost: norikae.localhost\r\n\r\n');
    await waitFor(() => /norikae-splice events/.test(client.received()), 'the stream to open');
    // It reads nothing more: the kernel's buffers fill, then norikae's would.
    client.socket.pause();
    let maxBuffered = 0;
    const sampler = setInterval(() => {
      for (const { buffered } of dashboard.events.stats()) maxBuffered = Math.max(maxBuffered, buffered);
    }, 5);
    t.after(() => clearInterval(sampler));
    // 200 000 lines of ~200 bytes: 40 MB, far more than loopback's socket buffers hold.
    const printed = await exchange(t, port, [getHead('chatty.localhost', '/print?lines=200000')]);
    assert.equal(parseResponse(printed).status, 200);
    await waitFor(() => supervisor.logTail('chatty', 1).some((line) => /printed 200000 lines/.test(line)), 'the last line', 60_000);
    clearInterval(sampler);
    const [stats] = dashboard.events.stats();
    assert.ok(stats!.behind && stats!.droppedLines > 0, `lines were dropped for it: ${JSON.stringify(stats)}`);
    assert.ok(maxBuffered <= SLOW_CLIENT_BYTES + 64 * 1024, `at most ${maxBuffered} bytes waited for it`);

    client.socket.resume();
    // Each time it drained (the kernel took some of the buffered bytes), it was told what it had missed till then.
    const droppedSoFar = (): number => [...client.received().matchAll(/event: dropped\ndata: \{"name":"chatty","lines":(\d+)\}/g)]
      .reduce((sum, match) => sum + Number(match[1]), 0);
    await waitFor(() => droppedSoFar() === dashboard.events.stats()[0]!.droppedLines, 'the dropped events to add up', 30_000);
    assert.ok(droppedSoFar() >= stats!.droppedLines);
    // Lines printed afterwards reach it again.
    await exchange(t, port, [getHead('chatty.localhost', '/print?lines=3')]);
    await waitFor(() => /printed 3 lines/.test(client.received()), 'a line printed after it caught up');
  });
});
