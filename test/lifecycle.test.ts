// Service lifecycle depth: readiness checks, dependencies, stop commands, sticky user stops,
// dual-stack upstreams and port diagnosis, with real processes and sockets.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { isLiveProcess } from '../lib/process-group.js';
import { closeServer, connectTo, delay, freePort, waitFor } from './helpers.js';
import { start } from './launch-harness.js';

const GREETER = fileURLToPath(new URL('./fixtures/tcp-greeter.js', import.meta.url));

describe('readiness checks', () => {
  test('ready = { http = "/healthz" } waits for a status below 500, not for the port', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --healthy-after 400"\nready = { http = "/healthz" }\n`);
    const first = JSON.parse((await h.get('app.localhost')).body) as { healthy: boolean };
    assert.equal(first.healthy, true, 'the first request arrived before the health check passed');
  });

  test('ready = { log = "…" } waits for a matching line of output', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --say-ready-after 400"\nready = { log = "Watching for file changes" }\n`);
    const first = JSON.parse((await h.get('app.localhost')).body) as { saidReady: boolean };
    assert.equal(first.saidReady, true);
  });

  test('checks combine, and the 504 page says which one was still failing', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --healthy-after -1"\n`
      + 'ready = { tcp = true, http = "/healthz" }\nready_timeout = 0.6\n');
    const response = await h.get('app.localhost');
    assert.equal(response.status, 504);
    assert.match(response.body, /was not ready within 0\.6 s \(ready_timeout\): GET \/healthz answered 503/);
    assert.doesNotMatch(response.body, /did not accept connections/, 'the tcp check held');
  });
});

describe('dependencies', () => {
  test('requires launches a chain in order, a raw-TCP dependency included', async (t) => {
    const h = await start(t, `[service.db]\nlisten = ${await freePort()}\nport = ${await freePort()}\ncommand = "node ${GREETER}"\n`
      + `[service.api]\nport = ${await freePort()}\ncommand = "{server}"\nrequires = ["db"]\n`
      + `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nrequires = "api"\n`);
    assert.equal((await h.get('web.localhost')).status, 200);
    const launches = h.log.lines.filter((line) => line.startsWith('launching ')).map((line) => line.split(':')[0]);
    assert.deepEqual(launches, ['launching db', 'launching api', 'launching web']);
    assert.ok(h.log.lines.includes('web requires api: launching api first'));
    assert.ok(h.log.lines.includes('api requires db: launching db first'));
    for (const name of ['db', 'api', 'web']) assert.equal(h.supervisor.info(name)!.state, 'running', name);
    // Running dependencies are not launched twice.
    await h.supervisor.restart('web');
    assert.equal(h.log.lines.filter((line) => line.startsWith('launching db')).length, 1);
  });

  test('a dependency that fails fails the launch with a 502 naming it', async (t) => {
    const h = await start(t, `[service.db]\nport = ${await freePort()}\ncommand = "{server} --exit-code 2"\n`
      + `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    const response = await h.get('web.localhost');
    assert.equal(response.status, 502);
    assert.match(response.body, /web requires db, which failed to start: db exited with code 2/);
    assert.match(response.body, /missing-thing/, "the dependency's output");
    assert.equal(h.launches().length, 0, 'web itself was not launched');
  });
});

describe('stopping', () => {
  test('a stop command stops a service that runs in the background', async (t) => {
    const port = await freePort();
    const pidFile = `pid-${port}`;
    // The command starts the server in the background and exits 0, like `docker compose up -d`.
    const h = await start(t, `[service.app]\nport = ${port}\ncwd = "."\n`
      + `command = "{server} --record {record} & echo $! > ${pidFile}"\n`
      + `stop = "kill $(cat ${pidFile}) && echo stopped-by-command > stop-marker"\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    const [server] = h.launches();
    assert.equal(h.supervisor.info('app')!.state, 'running');
    // The shell's exit is taken once its pipes close or 100 ms later (the background server keeps
    // them open), which may be after the server became ready and answered: wait for it.
    await waitFor(() => h.log.lines.some((line) => /app's command finished; it runs in the background/.test(line)), 'the background note');
    await h.supervisor.stopByUser('app');
    assert.equal(isLiveProcess(server!.pid), false);
    assert.equal(readFileSync(join(h.dir, 'stop-marker'), 'utf8').trim(), 'stopped-by-command');
  });

  test('a service the user stopped stays stopped while a client reconnects every 200 ms', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    await h.supervisor.stopByUser('app');
    for (let i = 0; i < 8; i++) {
      const response = await h.get('app.localhost');
      assert.equal(response.status, 503);
      assert.match(response.body, /app was stopped by you/);
      await delay(200);
    }
    assert.equal(h.launches().length, 1);
    await h.supervisor.start('app');
    assert.equal((await h.get('app.localhost')).status, 200);
  });

  test('a relaunch soon after an idle stop is still done, and logged as a reconnect', async (t) => {
    const h = await start(t, `idle_cooldown = 20\n[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nidle_timeout = 0.3\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    await waitFor(() => h.supervisor.info('app')!.state === 'stopped', 'the idle stop');
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 2);
    assert.ok(h.log.lines.some((line) => /^app is launched again \d+\.\d s after its idle stop: a client reconnected/.test(line)));
  });
});

describe('upstreams on IPv4 and IPv6', () => {
  test('a server bound to ::1 only is reached, and never launched twice', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --host ::1 --record {record}"\n`);
    for (let i = 0; i < 3; i++) assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 1);
  });

  test('a ::1-only server that norikae did not start is used, not launched over', async (t) => {
    const external = createServer((_req, res) => res.end('external on ::1'));
    await new Promise<void>((resolve) => external.listen(0, '::1', resolve));
    t.after(() => closeServer(external));
    const port = (external.address() as { port: number }).port;
    const h = await start(t, `[service.app]\nport = ${port}\ncommand = "{server} --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).body, 'external on ::1');
    assert.equal(h.launches().length, 0);
  });
});

describe('port diagnosis', () => {
  test('a port held by a foreign process is named on the error page instead of launching into EADDRINUSE', async (t) => {
    // Listening on 127.0.0.2 only: 127.0.0.1 and ::1 refuse us, yet a dev server binding
    // 0.0.0.0 on that port would fail with EADDRINUSE.
    const holder = spawn('python3', ['-c', [
      'import socket, time',
      's = socket.socket(); s.bind(("127.0.0.2", 0)); s.listen(8)',
      'print(s.getsockname()[1], flush=True); time.sleep(60)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => holder.kill('SIGKILL'));
    const port = Number(await new Promise<string>((resolve) => holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
    const h = await start(t, `[service.app]\nport = ${port}\ncommand = "{server} --host 0.0.0.0 --record {record}"\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 502);
    assert.match(response.body, new RegExp(`port ${port} of app is held by pid ${holder.pid} \\(\\S*python3 -c import socket.*\\), which norikae-splice did not start`));
    assert.equal(h.launches().length, 0);
    assert.equal(h.supervisor.info('app')!.portHeldBy?.pid, holder.pid);
    assert.ok(h.log.lines.some((line) => line.includes(`held by pid ${holder.pid}`)));
  });
});

describe('raw TCP dependency reachable', () => {
  test('the greeter launched as a dependency answers on its own listener', async (t) => {
    const listen = await freePort();
    const h = await start(t, `[service.db]\nlisten = ${listen}\nport = ${await freePort()}\ncommand = "node ${GREETER}"\n`
      + `[service.web]\nport = ${await freePort()}\ncommand = "{server}"\nrequires = ["db"]\n`);
    assert.equal((await h.get('web.localhost')).status, 200);
    const socket = await connectTo(t, listen);
    const greeting = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    assert.match(greeting, /^hello \d+/);
    assert.equal(existsSync(join(h.dir, 'logs', 'db.log')), true);
  });
});
