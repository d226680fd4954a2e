// The dashboard API on norikae.localhost, over real HTTP through a running splicer.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { Dashboard } from '../lib/dashboard.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor, type ServiceInfo } from '../lib/supervisor.js';
import { delay, DEV_SERVER, exchange, freePort, getHead, parseResponse, waitFor } from './helpers.js';

/** A splicer with a dashboard over a supervisor of two services. */
async function start(t: TestContext, extraServices = '') {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-dashboard-'));
  const config = parseConfig(`listen = "127.0.0.1:0"\nlog_dir = "${dir}"\n`
    + `[service.app]\nhost = ["app.localhost", "*.app.localhost"]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`
    + `[service.db]\nlisten = ${await freePort()}\nport = ${await freePort()}\n${extraServices}`, join(dir, 'norikae.toml'));
  const supervisor = new ServiceSupervisor(config, { log: memoryLog() });
  const server = new SpliceServer(config, { log: memoryLog(), connector: supervisor, dashboard: new Dashboard(supervisor) });
  const [address] = await server.listen();
  t.after(async () => {
    await server.close();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port: address!.port, supervisor };
}

/** An API call with Host: norikae.localhost:PORT; JSON in, JSON out. */
function api(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `norikae.localhost:${port}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode!, body: res.headers['content-type']?.startsWith('application/json') ? JSON.parse(text) : text });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

interface EventStream {
  /** Settles when the answer's head has arrived, and the stream with it is being fanned out to. */
  opened: Promise<void>;
  headers: IncomingHttpHeaders;
  events: { event: string; data: any }[];
  close(): void;
}

/** Follows /api/events on the dashboard host, collecting its events; closed when the test ends. */
function openEvents(t: TestContext, port: number): EventStream {
  const stream: EventStream = { opened: Promise.resolve(), headers: {}, events: [], close: () => req.destroy() };
  const req = request({ host: '127.0.0.1', port, path: '/api/events', headers: { host: `norikae.localhost:${port}` }, agent: false });
  stream.opened = new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      stream.headers = res.headers;
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        for (let end; (end = buffered.indexOf('\n\n')) !== -1;) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          if (event) stream.events.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) });
        }
      });
      res.on('error', () => {});
      resolve();
    });
  });
  stream.opened.catch(() => {});
  req.end();
  t.after(() => req.destroy());
  return stream;
}

describe('dashboard API', () => {
  test('lists the services with their hosts as links on the port used', async (t) => {
    const { port } = await start(t);
    const { status, body } = await api(port, 'GET', '/api/services');
    assert.equal(status, 200);
    const [app, db] = body.services as (ServiceInfo & { urls: string[] })[];
    assert.equal(body.reloadError, null, 'null from a supervisor that does not report one');
    assert.equal(app!.name, 'app');
    assert.equal(app!.state, 'stopped');
    assert.deepEqual(app!.urls, [`http://app.localhost:${port}/`]);
    assert.equal(app!.pid, null);
    assert.match(app!.command!, /dev-server\.js/);
    assert.equal(db!.name, 'db');
    assert.match(db!.listen[0]!, /^127\.0\.0\.1:\d+$/);
    assert.equal((await api(port, 'GET', '/api/services/app')).body.name, 'app');
    assert.equal((await api(port, 'GET', '/api/services/nope')).status, 404);
    assert.equal((await api(port, 'GET', '/api/nothing')).status, 404);
  });

  test('start, stop (which sticks: requests get 503) and restart; logs; counters', async (t) => {
    const { port } = await start(t);
    const started = await api(port, 'POST', '/api/services/app/start');
    assert.equal(started.status, 202);
    assert.equal(started.body.service.state, 'running');
    assert.ok(started.body.service.pid > 0);

    const served = parseResponse(await exchange(t, port, [getHead('app.localhost')]));
    assert.equal(served.status, 200);
    await delay(50);
    const info = (await api(port, 'GET', '/api/services/app')).body as ServiceInfo;
    assert.ok(info.bytesIn > 0 && info.bytesOut > 0, 'bytes counted');
    const logs = await api(port, 'GET', '/api/services/app/logs?lines=5');
    assert.ok((logs.body.lines as string[]).some((line) => /dev server listening/.test(line)));

    const stopped = await api(port, 'POST', '/api/services/app/stop');
    assert.equal(stopped.body.service.state, 'stopped');
    assert.equal(stopped.body.service.stoppedByUser, true);
    const refused = parseResponse(await exchange(t, port, [getHead('app.localhost')]));
    assert.equal(refused.status, 503);
    assert.match(refused.body, /stopped by you[^]*\n {2}norikae-splice start app --config \S+norikae\.toml\n/);
    // The browser's page shows the command as code, not in Markdown backticks.
    const page = parseResponse(await exchange(t, port, [getHead('app.localhost', '/', 'Accept: text/html\r\n')]));
    assert.equal(page.status, 503);
    assert.match(page.body, /<pre>norikae-splice start app --config \S+<\/pre>/);
    assert.doesNotMatch(page.body, /`/);

    const restarted = await api(port, 'POST', '/api/services/app/restart');
    assert.equal(restarted.body.service.state, 'running');
    assert.notEqual(restarted.body.service.pid, started.body.service.pid);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
  });

  test('a malformed percent-encoded service name is a 400 with a JSON error, not a 500', async (t) => {
    const { port } = await start(t);
    const logs = await api(port, 'GET', '/api/services/%E0/logs');
    assert.equal(logs.status, 400);
    assert.equal(typeof logs.body, 'object', 'a JSON body');
    assert.match(logs.body.error, /"%E0" is not a service name \(bad percent-encoding\)/);
    const info = await api(port, 'GET', '/api/services/%E0');
    assert.equal(info.status, 400);
    assert.match(info.body.error, /bad percent-encoding/);
    // The dashboard still answers afterwards.
    assert.equal((await api(port, 'GET', '/api/services/app')).status, 200);
  });

  test('a service without a command cannot be started; GET does not change anything', async (t) => {
    const { port } = await start(t);
    const refused = await api(port, 'POST', '/api/services/db/start');
    assert.equal(refused.status, 409);
    assert.match(refused.body.error, /has no `command`/);
    assert.equal((await api(port, 'GET', '/api/services/app/start')).status, 405);
  });

  test('state changes from another site are refused with 403', async (t) => {
    const { port, supervisor } = await start(t);
    const crossOrigin = await api(port, 'POST', '/api/services/app/start', { origin: 'http://evil.example' });
    assert.equal(crossOrigin.status, 403);
    const crossSite = await api(port, 'POST', '/api/services/app/start', { 'sec-fetch-site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const otherPort = await api(port, 'POST', '/api/services/app/start', { origin: 'http://norikae.localhost:1' });
    assert.equal(otherPort.status, 403);
    assert.equal(supervisor.info('app')!.state, 'stopped', 'nothing was launched');
    const sameOrigin = await api(port, 'POST', '/api/services/app/start', { origin: `http://norikae.localhost:${port}`, 'sec-fetch-site': 'same-origin' });
    assert.equal(sameOrigin.status, 202);
  });

  test('the Origin is compared with the host the request was routed by, not its Host header', async (t) => {
    const { port, supervisor } = await start(t);
    // Routing takes an absolute-form target's authority over Host (RFC 9112 §3.2.2): this reaches
    // the dashboard, and its Origin matches the Host header, which routing did not use.
    const head = (origin: string): string => `POST http://norikae.localhost:${port}/api/services/app/start HTTP/1.1\r\n`
      + `Host: evil.example\r\nOrigin: ${origin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    const forged = parseResponse(await exchange(t, port, [head('http://evil.example')]));
    assert.equal(forged.status, 403, forged.body);
    assert.match(forged.body, /cross-origin/);
    assert.equal(supervisor.info('app')!.state, 'stopped', 'nothing was launched');
    const own = parseResponse(await exchange(t, port, [head(`http://norikae.localhost:${port}`)]));
    assert.equal(own.status, 202, own.body);
  });

  test('server-sent events announce state changes and log lines', async (t) => {
    const { port } = await start(t);
    const stream = openEvents(t, port);
    await stream.opened;
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    const events = stream.events;
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    for (let i = 0; i < 100 && !events.some((e) => e.event === 'service' && e.data.state === 'running'); i++) await delay(20);
    assert.ok(events.some((e) => e.event === 'service' && e.data.name === 'app' && e.data.state === 'starting'));
    assert.ok(events.some((e) => e.event === 'service' && e.data.name === 'app' && e.data.state === 'running'));
    assert.ok(events.some((e) => e.event === 'log' && e.data.name === 'app' && /dev server listening/.test(e.data.line)));
  });

  test('50 open event streams share one subscription to the supervisor, dropped when they close', async (t) => {
    const { port, supervisor } = await start(t);
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => { warnings.push(warning); };
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const names = ['service', 'log', 'config'] as const;
    const listeners = (): number[] => names.map((name) => supervisor.listenerCount(name));
    const before = listeners();

    const streams = Array.from({ length: 50 }, () => openEvents(t, port));
    await Promise.all(streams.map((stream) => stream.opened));
    assert.deepEqual(listeners(), before.map((count) => count + 1), 'one listener per event name for all 50');

    supervisor.emit('config');
    assert.equal((await api(port, 'POST', '/api/services/app/start')).status, 202);
    const received = (stream: EventStream): boolean => stream.events.some((e) => e.event === 'config')
      && stream.events.some((e) => e.event === 'service' && e.data.name === 'app' && e.data.state === 'running');
    await waitFor(() => streams.every(received), 'every stream to receive the config and service events');
    for (const stream of streams) {
      const running = stream.events.find((e) => e.event === 'service' && e.data.state === 'running')!;
      assert.deepEqual(running.data.urls, [`http://app.localhost:${port}/`], 'links on the port the stream came in on');
    }
    await delay(10);  // warnings are emitted on the next tick
    assert.deepEqual(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning'), []);

    for (const stream of streams) stream.close();
    await waitFor(() => listeners().every((count, i) => count === before[i]), 'the last stream out to unsubscribe');
    // A stream opened afterwards subscribes again and is served.
    const again = openEvents(t, port);
    await again.opened;
    assert.deepEqual(listeners(), before.map((count) => count + 1));
    supervisor.emit('config');
    await waitFor(() => again.events.some((e) => e.event === 'config'), 'the new stream to receive an event');
  });

  test('a refused reload is reported with the list and the config event while it stands', async (t) => {
    const refused = 'norikae.toml:3:7: expected "=" after a key';
    const { port, supervisor } = await start(t);
    const stream = openEvents(t, port);
    await stream.opened;
    assert.equal((await api(port, 'GET', '/api/services')).body.reloadError, null);
    supervisor.setReloadError(refused);
    assert.equal((await api(port, 'GET', '/api/services')).body.reloadError, refused);
    await waitFor(() => stream.events.some((e) => e.event === 'config'), 'the config event');
    assert.deepEqual(stream.events.find((e) => e.event === 'config')!.data, { reloadError: refused });

    supervisor.setReloadError(undefined);
    await waitFor(() => stream.events.filter((e) => e.event === 'config').length === 2, 'the second config event');
    assert.deepEqual(stream.events.filter((e) => e.event === 'config')[1]!.data, { reloadError: null });
    assert.equal((await api(port, 'GET', '/api/services')).body.reloadError, null);
  });

  test('every ServiceInfo carries a sequence that grows, so a client can tell the newer of two', async (t) => {
    const { port } = await start(t);
    const first = (await api(port, 'GET', '/api/services/app')).body as { sequence: number };
    const list = (await api(port, 'GET', '/api/services')).body as { services: { sequence: number }[] };
    const again = (await api(port, 'GET', '/api/services/app')).body as { sequence: number };
    assert.ok(Number.isInteger(first.sequence));
    for (const info of list.services) assert.ok(info.sequence > first.sequence);
    assert.ok(again.sequence > Math.max(...list.services.map((info) => info.sequence)));
  });

  test('the page is served on the dashboard host, and listed on 404 pages', async (t) => {
    const { port } = await start(t);
    const page = await api(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<!doctype html>/i);
    const notFound = parseResponse(await exchange(t, port, [getHead('nothing.localhost')]));
    assert.match(notFound.body, new RegExp(`http://norikae\\.localhost:${port}/ {2}\\(the norikae-splice dashboard\\)`));
  });

  describe('control requests that another one overtakes', () => {
    /** A service that takes 1.5 s to listen: time enough for a second request to come in. */
    const slow = async () => `[service.slow]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER} --listen-after 1500"\nready_timeout = 20\n`;

    test('a restart overtaken by a stop is 409 Conflict, and the stop holds', async (t) => {
      const { port, supervisor } = await start(t, await slow());
      assert.equal((await api(port, 'POST', '/api/services/slow/start')).status, 202);
      const restart = api(port, 'POST', '/api/services/slow/restart');
      await waitFor(() => supervisor.info('slow')!.state === 'starting', 'the restart to launch again');
      const stop = await api(port, 'POST', '/api/services/slow/stop');
      assert.equal(stop.status, 202);
      const restarted = await restart;
      assert.equal(restarted.status, 409, JSON.stringify(restarted.body));
      assert.match(restarted.body.error, /restart of slow was overtaken by a stop/);
      assert.equal(supervisor.info('slow')!.stoppedByUser, true);
    });

    test('a restart whose stop phase a stop overtakes does not start the service again', async (t) => {
      const { port, supervisor } = await start(t, `[service.slow]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER} --linger-on-sigterm 1000"\n`);
      assert.equal((await api(port, 'POST', '/api/services/slow/start')).status, 202);
      const restart = api(port, 'POST', '/api/services/slow/restart');
      await waitFor(() => supervisor.logTail('slow', 5).some((line) => /closing on SIGTERM/.test(line)), 'the restart to stop it');
      const stop = await api(port, 'POST', '/api/services/slow/stop');
      assert.equal(stop.status, 202);
      const restarted = await restart;
      assert.equal(restarted.status, 409, JSON.stringify(restarted.body));
      await delay(300);
      assert.equal(supervisor.info('slow')!.stoppedByUser, true);
      assert.equal(supervisor.info('slow')!.pid, null, 'the later stop wins');
    });

    test('a start overtaken by a restart follows the new launch: 202 and running', async (t) => {
      const { port, supervisor } = await start(t, await slow());
      const start_ = api(port, 'POST', '/api/services/slow/start');
      await waitFor(() => supervisor.info('slow')!.pid !== null, 'the start to launch');
      const restarted = await api(port, 'POST', '/api/services/slow/restart');
      assert.equal(restarted.status, 202, JSON.stringify(restarted.body));
      const started = await start_;
      assert.equal(started.status, 202, JSON.stringify(started.body));
      assert.equal(started.body.service.state, 'running');
    });

    test('a start overtaken by a stop is 409 Conflict', async (t) => {
      const { port, supervisor } = await start(t, await slow());
      const start_ = api(port, 'POST', '/api/services/slow/start');
      await waitFor(() => supervisor.info('slow')!.pid !== null, 'the start to launch');
      assert.equal((await api(port, 'POST', '/api/services/slow/stop')).status, 202);
      const started = await start_;
      assert.equal(started.status, 409, JSON.stringify(started.body));
      assert.match(started.body.error, /start of slow was overtaken by a stop/);
    });
  });

  test('a target that is no path (//, //x) is 404 or 400 with a JSON error, never a 500', async (t) => {
    const { port } = await start(t);
    for (const path of ['//', '//x', '//x/api/services']) {
      const answer = await api(port, 'GET', path);
      assert.equal(answer.status, 404, path);
      assert.equal(typeof answer.body, 'object', `${path}: a JSON body`);
    }
    assert.equal((await api(port, 'GET', '/api/services')).status, 200);
  });
});
