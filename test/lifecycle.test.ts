// Service lifecycle depth: readiness checks, dependencies, stop commands, sticky user stops,
// dual-stack upstreams and port diagnosis, with real processes and sockets.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import type { ServiceConfig } from '../lib/config.js';
import { ControlError, NorikaeError, ServiceStoppedError } from '../lib/errors.js';
import { launchCommand } from '../lib/launch.js';
import { LaunchRecord } from '../lib/launch-record.js';
import { bootId, groupMembers, isLiveProcess, processStartTime } from '../lib/process-group.js';
import { runningInstance } from '../lib/running-instance.js';
import { ServiceLog } from '../lib/service-log.js';
import { closeServer, connectTo, delay, freePort, listenOn, waitFor } from './helpers.js';
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

  test('ready.http gives up at ready_timeout on a server that trickles its response head a byte at a time', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{trickle} --interval 300 --record {record}"\n`
      + 'ready = { http = "/health" }\nready_timeout = 1\n');
    // A hang guard, not a speed measurement: the head never ends, so without a deadline on the
    // health check the launch waits forever.
    const response = await settledWithin(h.get('app.localhost'), 6000);
    assert.ok(response !== undefined, 'the launch did not settle within 6 s');
    assert.equal(response.status, 504, response.body);
    assert.match(response.body, /app was not ready within 1 s \(ready_timeout\): GET \/health got no answer\. It was stopped\./);
    const [launch] = h.launches();
    assert.equal(isLiveProcess(launch!.pid), false, 'the trickling server was stopped');
    assert.notEqual(h.supervisor.info('app')!.state, 'running');
  });
});

describe('a command that backgrounds its server', () => {
  test('`server &`: the shell\'s exit while its group lives on is no exit; the first request is served', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record} --listen-after 400 &"\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 200, response.body);
    const [server] = h.launches();
    assert.equal((JSON.parse(response.body) as { pid: number }).pid, server!.pid);
    assert.equal(h.supervisor.info('app')!.state, 'running');
    await h.supervisor.stopByUser('app');
    assert.equal(isLiveProcess(server!.pid), false, 'the stop reached the background server');
  });

  test('`server &` that never listens: 504 at ready_timeout (not a 502 at the shell\'s exit), and it is stopped', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record} --never-listen &"\nready_timeout = 0.8\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 504, response.body);
    const [server] = h.launches();
    await waitFor(() => !isLiveProcess(server!.pid), 'the stop of the background server');
  });

  test('a shell whose group is gone when it exits is still an early exit (502)', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --exit-code 4 & wait"\nready_timeout = 5\n`);
    const began = performance.now();
    const response = await h.get('app.localhost');
    assert.equal(response.status, 502, response.body);
    assert.ok(performance.now() - began < 3000, 'not held until ready_timeout');
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

  test('a stop while the launch waits for a dependency keeps the service from being spawned', async (t) => {
    const webPort = await freePort();
    const h = await start(t, `[service.db]\nport = ${await freePort()}\ncommand = "{server} --listen-after 1500 --record {record}"\n`
      + `[service.web]\nport = ${webPort}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    const direct = h.supervisor.connect({ name: 'web' } as ServiceConfig);
    const response = h.get('web.localhost');
    await waitFor(() => h.log.lines.some((line) => line.startsWith('launching db: ')), 'the launch of db');
    assert.equal(h.supervisor.info('web')!.state, 'starting', 'web waits for db');
    await h.supervisor.stopByUser('web');
    await assert.rejects(direct, ServiceStoppedError);
    const answer = await response;
    assert.equal(answer.status, 503, answer.body);
    assert.match(answer.body, /web was stopped by you/);
    // The wait for db took the launch's signal: the clients were answered without waiting for db
    // (which takes 1.5 s), and db's own launch went on.
    assert.equal(h.supervisor.info('db')!.state, 'starting', 'the answer did not wait for db');
    await waitFor(() => h.supervisor.info('db')!.state === 'running', 'db launched all the same');
    assert.deepEqual(h.launches().filter((launch) => launch.port === webPort), [], 'web never ran');
    assert.ok(!h.log.lines.some((line) => line.startsWith('launching web')), 'web never ran');
    const info = h.supervisor.info('web')!;
    assert.equal(info.state, 'stopped', 'a cancelled launch is not a failed one');
    assert.equal(info.pid, null);
    assert.equal(info.stoppedByUser, true);
  });

  test('a restart or a stop while the launch waits for readiness: the waiting clients get the new launch, or the 503 of a stopped service', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --listen-after 800 --record {record}"\n`
      + `[service.other]\nport = ${await freePort()}\ncommand = "{server} --listen-after 800 --record {record}"\n`);
    const first = h.get('app.localhost');
    await waitFor(() => h.launches().length === 1, 'the launch of app');
    assert.equal(h.supervisor.info('app')!.state, 'starting');
    await h.supervisor.restart('app');
    const answer = await first;
    assert.equal(answer.status, 200, answer.body);
    assert.equal((JSON.parse(answer.body) as { pid: number }).pid, h.launches()[1]!.pid, 'served by the second launch');

    const waiting = h.get('other.localhost');
    await waitFor(() => h.launches().length === 3, 'the launch of other');
    assert.equal(h.supervisor.info('other')!.state, 'starting');
    await h.supervisor.stopByUser('other');
    const stopped = await waiting;
    assert.equal(stopped.status, 503, stopped.body);
    assert.match(stopped.body, /other was stopped by you/);
    assert.equal(h.supervisor.info('other')!.state, 'stopped', 'stopped, not failed');
  });

  test('a stop while a background-started service (with a `stop` command) waits for readiness, or for its `delay`, answers 503 at once', async (t) => {
    // `true` exits 0 at once: with a `stop` command that means "started in the background", so
    // only the port can say it is ready, and it never will; no exit ends the wait either.
    for (const wait of ['ready_timeout = 6', 'delay = 15\nready_timeout = 30']) {
      const h = await start(t, `[service.daemon]\nport = ${await freePort()}\ncommand = "true"\nstop = "true"\n${wait}\n`);
      const waiting = h.get('daemon.localhost');
      await waitFor(() => h.supervisor.info('daemon')!.state === 'starting', 'the launch');
      await delay(200);
      await h.supervisor.stopByUser('daemon');
      // A hang guard, not a speed measurement: without the cancellation it waits out the 6 s or 15 s.
      const answer = await settledWithin(waiting, 4000);
      assert.ok(answer !== undefined, `the waiting request was answered at once (${wait})`);
      assert.equal(answer.status, 503, answer.body);
      assert.equal(h.supervisor.info('daemon')!.state, 'stopped');
    }
  });

  test('a restart of a dependency while a dependent waits for it: the dependent follows the new launch', async (t) => {
    const h = await start(t, `[service.db]\nport = ${await freePort()}\ncommand = "{server} --listen-after 800 --record {record}"\n`
      + `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    const waiting = h.get('web.localhost');
    await waitFor(() => h.log.lines.some((line) => line.startsWith('launching db: ')), 'the launch of db')
      .catch((err: Error) => assert.fail(`${err.message}; log: ${h.log.lines.join(' | ')}`));
    await h.supervisor.restart('db');
    const answer = await waiting;
    assert.equal(answer.status, 200, answer.body);
  });

  test('a restart while the launch waits for a dependency hands the waiting clients to the new launch', async (t) => {
    const webPort = await freePort();
    const h = await start(t, `[service.db]\nport = ${await freePort()}\ncommand = "{server} --listen-after 1000 --record {record}"\n`
      + `[service.web]\nport = ${webPort}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    const response = h.get('web.localhost');
    await waitFor(() => h.log.lines.some((line) => line.startsWith('launching db: ')), 'the launch of db');
    assert.equal(h.supervisor.info('web')!.state, 'starting', 'web waits for db');
    const restarted = await h.supervisor.restart('web');
    assert.equal(restarted.state, 'running');
    const answer = await response;
    assert.equal(answer.status, 200, answer.body);
    assert.equal((JSON.parse(answer.body) as { port: number }).port, webPort);
    assert.equal(h.launches().filter((launch) => launch.port === webPort).length, 1, 'web was launched once');
  });

  test('a reload that drops `requires` lets the dependency go idle', async (t) => {
    const db = `[service.db]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nidle_timeout = 0.3\n`;
    const web = `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\n`;
    const h = await start(t, `${db}${web}requires = ["db"]\n`);
    assert.equal((await h.get('web.localhost')).status, 200);
    await delay(600);
    assert.equal(h.supervisor.info('db')!.state, 'running', 'db is kept while web requires it');
    await h.reconfigure(`${db}${web}`);
    await waitFor(() => h.log.lines.includes('stopping db (idle for 0.3 s)'), 'the idle stop of db once nothing requires it');
    assert.equal(h.supervisor.info('web')!.state, 'running');
  });

  test('a dependency is not idle while a service that requires it runs; its idle time starts when that one stops', async (t) => {
    const dbPort = await freePort();
    const h = await start(t, `[service.db]\nport = ${dbPort}\ncommand = "{server} --record {record}"\nidle_timeout = 0.3\n`
      + `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    assert.equal((await h.get('web.localhost')).status, 200);
    // web talks to db directly, past norikae: db has no spliced connection, yet it is in use.
    await delay(1000);
    assert.equal(h.supervisor.info('db')!.state, 'running', 'db was kept while web runs');
    assert.ok(!h.log.lines.some((line) => line.startsWith('stopping db')));
    await h.supervisor.stopByUser('web');
    await waitFor(() => h.log.lines.includes('stopping db (idle for 0.3 s)'), 'the idle stop of db once web stopped');
    await waitFor(() => h.supervisor.info('db')!.state === 'stopped', 'db to stop');
  });

  test('a reload that removes a service while its launch waits for a dependency keeps it from being spawned', async (t) => {
    const webPort = await freePort();
    const db = `[service.db]\nport = ${await freePort()}\ncommand = "{server} --listen-after 1500 --record {record}"\n`;
    const h = await start(t, `${db}[service.web]\nport = ${webPort}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    const response = h.get('web.localhost');
    await waitFor(() => h.log.lines.some((line) => line.startsWith('launching db: ')), 'the launch of db');
    assert.equal(h.supervisor.info('web')!.state, 'starting', 'web waits for db');
    await h.reconfigure(db);
    assert.equal(h.supervisor.info('web'), undefined);
    const answer = await response;
    assert.equal(answer.status, 503, answer.body);
    assert.match(answer.body, /web was not launched: it was removed from the config/);
    assert.deepEqual(h.launches().filter((launch) => launch.port === webPort), [], 'web never ran');
    assert.ok(!h.log.lines.some((line) => line.startsWith('launching web')), 'web never ran');
  });

  test('a dependency in the middle of its idle stop is awaited, then launched again', async (t) => {
    const dbPort = await freePort();
    const webPort = await freePort();
    // db takes 1.5 s to exit after SIGTERM (it stops listening at once): a wide window in which
    // its stop is in flight.
    const h = await start(t, `[service.db]\nport = ${dbPort}\ncommand = "{server} --linger-on-sigterm 1500 --record {record}"\n`
      + 'idle_timeout = 0.2\nstop_timeout = 5\n'
      + `[service.web]\nport = ${webPort}\ncommand = "{server} --record {record}"\nrequires = ["db"]\n`);
    assert.equal((await h.get('db.localhost')).status, 200);
    await waitFor(() => h.supervisor.logTail('db', 50).includes('closing on SIGTERM'), 'db to begin its idle stop');
    assert.ok(h.log.lines.includes('stopping db (idle for 0.2 s)'));
    assert.notEqual(h.supervisor.info('db')!.pid, null, 'the stop of db is still in flight');
    const response = await h.get('web.localhost');
    assert.equal(response.status, 200, response.body);
    assert.equal((JSON.parse(response.body) as { port: number }).port, webPort);
    assert.equal(h.launches().filter((launch) => launch.port === dbPort).length, 2, 'db was launched again');
    assert.equal(h.launches().filter((launch) => launch.port === webPort).length, 1);
    assert.ok(h.log.lines.includes('web requires db: launching db first'));
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

  test('stopping a service that a server norikae did not start answers for is a 409, and the server keeps answering', async (t) => {
    const external = createServer((_req, res) => res.end('external'));
    await listenOn(external);
    t.after(() => closeServer(external));
    const port = (external.address() as { port: number }).port;
    const h = await start(t, `[service.app]\nport = ${port}\ncommand = "{server} --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).body, 'external');
    await assert.rejects(h.supervisor.stopByUser('app'), (err: unknown) => {
      assert.ok(err instanceof ControlError, String(err));
      assert.equal(err.status, 409);
      assert.match(err.message, new RegExp(`^app was not started by norikae-splice: pid ${process.pid} \\(.*\\) listens on port ${port}\\.`));
      return true;
    });
    assert.equal((await h.get('app.localhost')).body, 'external');
    const info = h.supervisor.info('app')!;
    assert.equal(info.stoppedByUser, false);
    assert.notEqual(info.state, 'running');
    assert.equal(h.launches().length, 0);
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

describe('launch record', () => {
  /** A node process that idles for 30 s with `args` on its command line; killed after the test. */
  function idler(t: TestContext, args: string[], options: { detached?: boolean } = {}): number {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', ...args], { stdio: 'ignore', ...options });
    t.after(() => child.kill('SIGKILL'));
    return child.pid!;
  }

  /** A process leading a group of its own, as the supervisor launches them. */
  function launchedGroup(t: TestContext): number {
    return idler(t, [], { detached: true });
  }

  /** A record file in a temporary folder, removed after the test. */
  function recordFile(t: TestContext): string {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-record-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return join(dir, 'launched.json');
  }

  /** Writes a record as a norikae that ran as `owner` would have, naming `launched`; returns its text. */
  function writeRecord(file: string, owner: { pid: number; started?: string | undefined; boot?: string | undefined }, launched: unknown[]): string {
    const text = JSON.stringify({ pid: owner.pid, started: owner.started, boot: owner.boot ?? bootId(), launched });
    writeFileSync(file, text);
    return text;
  }

  /** The entry of group `pgid` of service `app`, its leader known by its start time. */
  function entryOf(pgid: number, started = processStartTime(pgid)): unknown {
    return { launchId: `launch-${pgid}`, service: 'app', pgid, processes: [{ pid: pgid, started }] };
  }

  test('cleanOrphans refuses while the norikae-splice that wrote the record runs, and signals none of its groups', async (t) => {
    const file = recordFile(t);
    // The owner is alive and its command line names norikae-splice: its services are no orphans.
    const running = idler(t, ['norikae-splice', '--config', 'norikae.toml']);
    assert.match(readFileSync(`/proc/${running}/cmdline`, 'latin1'), /norikae-splice/);
    const group = launchedGroup(t);
    const text = writeRecord(file, { pid: running }, [entryOf(group)]);
    await assert.rejects(new LaunchRecord(file).cleanOrphans(() => 1000), (err: unknown) => {
      assert.ok(err instanceof NorikaeError, String(err));
      assert.equal(err.code, 'NORIKAE_ERR_RUNNING');
      assert.match(err.message, new RegExp(`already running with this config \\(pid ${running}\\)`));
      return true;
    });
    assert.equal(isLiveProcess(group), true, 'the running norikae-splice keeps its service');
    assert.equal(readFileSync(file, 'utf8'), text, 'the record is left as it was');
    // With the start time the owner recorded, too.
    writeRecord(file, { pid: running, started: processStartTime(running) }, [entryOf(group)]);
    await assert.rejects(new LaunchRecord(file).cleanOrphans(() => 1000), /already running with this config/);
    assert.equal(isLiveProcess(group), true);

    // The owner's pid and start time, but in another boot: it is not the same process.
    writeRecord(file, { pid: running, started: processStartTime(running), boot: 'another-boot' }, []);
    assert.equal(runningInstance(file), undefined);

    // The owner's pid now belongs to another norikae-splice (the pid was reused): a start time
    // that does not match says so, and the groups are orphans.
    writeRecord(file, { pid: running, started: String(Number(processStartTime(running)) - 1) }, [entryOf(group)]);
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [{ service: 'app', pids: [group] }]);
    assert.equal(isLiveProcess(group), false);
    const relaunched = launchedGroup(t);

    // An owner pid that some other live process has now: the groups are orphans, and stopped.
    const other = idler(t, []);
    writeRecord(file, { pid: other }, [entryOf(relaunched)]);
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [{ service: 'app', pids: [relaunched] }]);
    assert.equal(isLiveProcess(relaunched), false);

    // An owner that has exited: the same.
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await once(gone, 'exit');
    assert.equal(isLiveProcess(gone.pid!), false);
    const another = launchedGroup(t);
    writeRecord(file, { pid: gone.pid! }, [entryOf(another)]);
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [{ service: 'app', pids: [another] }]);
    assert.equal(isLiveProcess(another), false);
  });

  test('cleanOrphans leaves alone a recorded group it cannot tell for its own: another start time, another boot, an older record', async (t) => {
    const file = recordFile(t);
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await once(gone, 'exit');
    const owner = { pid: gone.pid! };
    const stranger = launchedGroup(t);
    const started = Number(processStartTime(stranger));
    const cases: [string, unknown, string?][] = [
      // The pid names a live group leader that started before the launch recorded (the pid came back).
      ['started before the recorded start', entryOf(stranger, String(started + 1))],
      ['started after the recorded start', entryOf(stranger, String(started - 1))],
      ['the right start time, of another boot', entryOf(stranger), 'another-boot'],
      // A record of an older version, which named launches by an environment variable.
      ['no start time at all', { launchId: 'launch-1', pgid: stranger, service: 'app' }],
      ['a start time that is not text', { launchId: 'launch-1', pgid: stranger, service: 'app', processes: [{ pid: stranger, started }] }],
    ];
    for (const [what, entry, boot] of cases) {
      writeRecord(file, { ...owner, boot }, [entry]);
      assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [], what);
      assert.equal(isLiveProcess(stranger), true, what);
      assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { launched: unknown[] }).launched, [], `${what}: the record starts afresh`);
    }

    // A process of ours, known for good, that is not in the recorded group (it left it: setsid):
    // the group is not ours and is left alone; the process is ours, wherever it went, and is stopped.
    const ours = idler(t, []);
    writeRecord(file, owner, [{ launchId: 'launch-1', service: 'app', pgid: stranger, processes: [{ pid: ours, started: processStartTime(ours) }] }]);
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [{ service: 'app', pids: [ours] }]);
    assert.equal(isLiveProcess(stranger), true);
    assert.equal(isLiveProcess(ours), false);
  });

  test('launches are recorded off the event loop, one write at a time, the last state last', async (t) => {
    const file = recordFile(t);
    const record = new LaunchRecord(file);
    const never = new Promise<never>(() => {});
    const entries = (): string[] => (JSON.parse(readFileSync(file, 'utf8')) as { launched: { launchId: string }[] }).launched.map((entry) => entry.launchId);
    // Twenty launches recorded in one turn (as many spawns' replies may arrive): nothing is
    // written on the way (the file does not even exist yet), and all twenty once it is.
    for (let i = 0; i < 20; i++) record.add({ launchId: `launch-${i}`, service: 'app', process: { pid: 100_000 + i, started: '1', exited: never } });
    assert.equal(existsSync(file), false, 'written after the turn, not during it');
    await record.flushed();
    assert.deepEqual(entries(), Array.from({ length: 20 }, (_, i) => `launch-${i}`));
    // Changes while a write is under way are written after it, whatever the threads' timing.
    for (let i = 0; i < 20; i++) {
      record.remove(`launch-${i}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await record.flushed();
    assert.deepEqual(entries(), []);
  });

  test('a group whose shell exited first is recorded by the members it left, and stopped by them', async (t) => {
    const file = recordFile(t);
    const record = new LaunchRecord(file);
    // The shell starts a server in the background and exits at once.
    const launched = await launchCommand({ name: 'app', command: 'sleep 30 >/dev/null 2>&1 &', cwd: undefined, env: {}, port: 0 }, new ServiceLog());
    const group = launched.pid;
    t.after(() => {
      for (const pid of groupMembers(group)) process.kill(pid, 'SIGKILL');
    });
    record.add({ launchId: 'launch-1', service: 'app', process: launched });
    await launched.exited;
    await record.flushed();
    const [sleeper] = groupMembers(group);
    assert.ok(sleeper !== undefined && sleeper !== group, 'the shell is gone, its background process lives on');
    const written = readFileSync(file, 'utf8');
    const [entry] = (JSON.parse(written) as { launched: { pgid: number; processes: { pid: number; started: string }[] }[] }).launched;
    assert.equal(entry!.pgid, group);
    const [shell, member] = entry!.processes;
    assert.equal(shell!.pid, group);
    assert.ok(Number(shell!.started) <= Number(processStartTime(sleeper)), 'the shell started before what it forked');
    assert.deepEqual(member, { pid: sleeper, started: processStartTime(sleeper) });
    assert.equal(entry!.processes.length, 2);

    // Knowing the shell alone, the group could be anyone's now that it has gone: left alone.
    const data = JSON.parse(written) as { launched: { processes: unknown[] }[] };
    data.launched[0]!.processes.splice(1);
    writeFileSync(file, JSON.stringify(data));
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), []);
    assert.equal(isLiveProcess(sleeper), true);

    // As the launching norikae wrote it: the member it knows is still in the group, so it is ours.
    writeFileSync(file, written);
    assert.deepEqual(await new LaunchRecord(file).cleanOrphans(() => 1000), [{ service: 'app', pids: [sleeper] }]);
    assert.equal(isLiveProcess(sleeper), false);
  });
});

/** What `promise` settles to, or undefined if it has not within `ms` (a hang guard). */
async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)))]);
  } finally {
    clearTimeout(timer);
  }
}
