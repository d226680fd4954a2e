// Launching on demand with real child processes (test/fixtures/dev-server.ts) and real sockets.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { groupAlive, isLiveProcess } from '../lib/process-group.js';
import { closeServer, connectTo, delay, exchange, freePort, getHead, listenOn, parseResponse, waitFor } from './helpers.js';
import { start } from './launch-harness.js';

describe('launch on demand', () => {
  test('a refused connection launches the command once, however many connections wait', async (t) => {
    const port = await freePort();
    const h = await start(t, `[service.app]\nport = ${port}\ncommand = "{server} --record {record} --listen-after 300"\n`);
    const responses = await Promise.all(Array.from({ length: 50 }, () => h.get('app.localhost')));
    assert.deepEqual(responses.map((r) => r.status), Array(50).fill(200));
    assert.equal(h.launches().length, 1);
    const pids = new Set(responses.map((r) => (JSON.parse(r.body) as { pid: number }).pid));
    assert.equal(pids.size, 1);
    assert.ok(h.log.lines.some((line) => /^launching app: node .*dev-server\.js/.test(line)));
    assert.ok(h.log.lines.some((line) => /^app ready on :\d+ in \d+\.\d\d s$/.test(line)));
  });

  test('the first client is spliced over the readiness probe\'s connection: the server accepts one, not two', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --listen-after 200"\n`);
    const first = JSON.parse((await h.get('app.localhost')).body) as { connection: number; connections: number };
    assert.deepEqual({ connection: first.connection, connections: first.connections }, { connection: 1, connections: 1 });
    // Later clients dial as always.
    const second = JSON.parse((await h.get('app.localhost')).body) as { connection: number; connections: number };
    assert.deepEqual({ connection: second.connection, connections: second.connections }, { connection: 2, connections: 2 });
  });

  test('after a ready.http check too, the first client comes over the probe\'s connection, not the health check\'s', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --listen-after 200 --healthy-after 300"\n`
      + 'ready = { http = "/healthz" }\n');
    const first = JSON.parse((await h.get('app.localhost')).body) as { connection: number; connections: number; healthy: boolean };
    assert.equal(first.healthy, true);
    // Each round opens a probe, then a GET /healthz of its own; the last round's probe, kept open
    // while its health check passed, is the one the client came over: no connection after that check.
    assert.equal(first.connection, first.connections - 1, `came on connection ${first.connection} of ${first.connections}`);
  });

  test('of twenty clients waiting for one launch, one takes the probe\'s connection, the others dial', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --listen-after 200"\n`);
    const responses = await Promise.all(Array.from({ length: 20 }, () => h.get('app.localhost')));
    assert.deepEqual(responses.map((r) => r.status), Array(20).fill(200));
    const connections = responses.map((r) => (JSON.parse(r.body) as { connection: number }).connection).sort((a, b) => a - b);
    assert.deepEqual(connections, Array.from({ length: 20 }, (_, i) => i + 1), 'twenty connections in all, each used once');
  });

  test('a probe\'s connection nobody waits for (a start, not a request) is closed', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server}"\n`);
    await h.supervisor.start('app');
    // Its close reaches the server soon after the next turn; a request asks how many are open.
    await delay(200);
    const response = JSON.parse((await h.get('app.localhost')).body) as { connection: number; connections: number; open: number };
    // The probe's connection was accepted (1) and closed: only this request's is open.
    assert.deepEqual({ connection: response.connection, connections: response.connections, open: response.open }, { connection: 2, connections: 2, open: 1 });
  });

  test('readiness is polled: a server that binds in 300 ms is served long before a fixed wait would', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --listen-after 300"\nready_timeout = 20\n`);
    const started = Date.now();
    const response = await h.get('app.localhost');
    assert.equal(response.status, 200, response.body);
    // Generous bound: the point is that nothing sleeps for a fixed multi-second delay.
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  test('`delay` is waited before the first readiness check', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server}"\ndelay = 1.2\n`);
    const started = Date.now();
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.ok(Date.now() - started >= 1200, `served after ${Date.now() - started} ms, before the delay`);
  });

  test('$PORT, {port}, env, and ~ in cwd reach the command', async (t) => {
    const home = mkdtempSync(join(homedir(), '.norikae-test-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const port = await freePort();
    const h = await start(t, `[service.app]\nport = ${port}\ncwd = "~/${basename(home)}"\ncommand = "{server} --port {port}"\nenv = { FOO = "bar" }\n`);
    const body = JSON.parse((await h.get('app.localhost')).body) as Record<string, unknown>;
    assert.deepEqual(body, { pid: body.pid, port, envPort: String(port), foo: 'bar', cwd: home, url: '/', healthy: true, saidReady: false,
      connection: 1, connections: 1, open: 1 });
  });

  test('a service without a port gets a free one through {port} and $PORT', async (t) => {
    const h = await start(t, '[service.app]\ncommand = "{server} --record {record}"\n');
    const body = JSON.parse((await h.get('app.localhost')).body) as { port: number; envPort: string };
    assert.ok(body.port > 0);
    assert.equal(body.envPort, String(body.port));
    assert.equal(h.supervisor.info('app')?.port, body.port);
  });

  test('a server already listening that norikae did not start is proxied to, not launched', async (t) => {
    const external = createServer((_req, res) => res.end('external'));
    await listenOn(external);
    t.after(() => closeServer(external));
    const h = await start(t, `[service.app]\nport = ${(external.address() as { port: number }).port}\ncommand = "{server} --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).body, 'external');
    assert.equal(h.launches().length, 0);
  });

  test('a client that hangs up while waiting changes nothing for the others', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record} --listen-after 400"\n`);
    const quitter = await connectTo(t, h.port);
    quitter.write(getHead('app.localhost'));
    const waiting = h.get('app.localhost');
    await delay(100);
    quitter.destroy();
    assert.equal((await waiting).status, 200);
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 1);
  });
});

describe('launch failures', () => {
  test('an exit before ready is a 502 with the exit code and the last lines of output', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --exit-code 3"\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 502);
    assert.match(response.body, /app exited with code 3 before it accepted connections/);
    assert.match(response.body, /starting up/);
    assert.match(response.body, /\| Error: cannot find module "missing-thing"\n/, 'log lines, colour codes removed');
    const html = parseResponse(await exchange(t, h.port, [getHead('app.localhost', '/', 'Accept: text/html\r\n')]));
    assert.match(html.body, /<pre>starting up\nError: cannot find module &#34;missing-thing&#34;/);
  });

  test('never ready within ready_timeout is a 504, and the process is stopped', async (t) => {
    // Long enough for the fixture (a node process) to start and print on a loaded machine: its line must be on the page.
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --never-listen --record {record}"\nready_timeout = 2\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 504);
    assert.match(response.body, /was not ready within 2 s \(ready_timeout\): port \d+ did not accept connections/);
    assert.match(response.body, /compiling forever/);
    const [launch] = h.launches();
    assert.equal(isLiveProcess(launch!.pid), false);
  });

  test('a crashed service is relaunched by the next request', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\n`);
    assert.equal((await h.get('app.localhost', '/crash')).body, 'bye');
    await waitFor(() => h.log.lines.includes('app exited with code 70'), 'the exit line');
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 2);
  });

  test('a crash loop is not relaunched on every request: 502 with the log and a back-off', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --exit-code 1 --record {record}"\n`);
    for (let i = 0; i < 3; i++) {
      const response = await h.get('app.localhost');
      assert.equal(response.status, 502);
      assert.match(response.body, /exited with code 1/);
    }
    await waitFor(() => h.log.lines.some((line) => /not relaunching it for 5 s/.test(line)), 'the back-off');
    const refused = await h.get('app.localhost');
    assert.equal(refused.status, 502);
    assert.match(refused.body, /keeps crashing .*tries again in [1-5] s/);
    assert.match(refused.body, /missing-thing/);
    assert.equal(h.launches().length, 3);
  });

  test('a shell that exits while its group lives on counts as a crash: after three, a back-off', async (t) => {
    // `sleep 30 &` keeps the group alive after the shell (and its server) exited.
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "sleep 30 & {server} --exit-code 1 --record {record}"\n`);
    const groups: number[] = [];
    t.after(() => {
      for (const group of groups) {
        try {
          if (groupAlive(group)) process.kill(-group, 'SIGKILL');
        } catch {
          // Gone in the meantime.
        }
      }
    });
    for (let i = 0; i < 3; i++) {
      const response = await h.get('app.localhost');
      assert.equal(response.status, 502);
      assert.match(response.body, /app exited with code 1 before it accepted connections/);
      const group = h.supervisor.info('app')!.pid;
      assert.ok(group !== null);
      groups.push(group);
      assert.equal(groupAlive(group), true, 'the background sleep outlives the shell');
    }
    const refused = await h.get('app.localhost');
    assert.equal(refused.status, 502);
    assert.match(refused.body, /app keeps crashing \(it exited 3 times within 30 s\).*tries again in [1-5] s/);
    assert.ok(h.log.lines.some((line) => /app exited 3 times within 30 s; not relaunching it for 5 s$/.test(line)), h.log.lines.join('\n'));
    assert.equal(h.launches().length, 3);
    assert.equal(h.supervisor.info('app')!.state, 'crashed');
    for (const group of groups) assert.equal(groupAlive(group), false, `group ${group} (its background sleep) was stopped`);
  });

  test('a cwd that does not exist is a 502 that says so', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncwd = "/nonexistent/folder"\ncommand = "{server}"\n`);
    const response = await h.get('app.localhost');
    assert.equal(response.status, 502);
    assert.match(response.body, /its cwd \/nonexistent\/folder is not a folder/);
  });
});

describe('stopping', () => {
  test('idle_timeout stops a launched service; the next request launches it again', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\nidle_timeout = 0.3\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    const [first] = h.launches();
    await waitFor(() => h.supervisor.info('app')?.state === 'stopped', 'the idle stop');
    assert.ok(h.log.lines.includes('stopping app (idle for 0.3 s)'));
    assert.equal(isLiveProcess(first!.pid), false);
    assert.equal((await h.get('app.localhost')).status, 200);
    assert.equal(h.launches().length, 2);
  });

  test('stopAll stops the whole process group, grandchildren included', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "sh -c '{server} --record {record}'"\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    const [grandchild] = h.launches();
    const shell = h.supervisor.info('app')!.pid!;
    assert.notEqual(grandchild!.pid, shell, 'the server runs below the shells');
    assert.equal(isLiveProcess(grandchild!.pid), true);
    await h.supervisor.stopAll();
    assert.equal(isLiveProcess(grandchild!.pid), false);
    assert.equal(isLiveProcess(shell), false);
  });

  test('a character split between two reads of the output comes out whole, on stdout and stderr', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --split-utf8 --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    const tail = h.supervisor.logTail('app', 10);
    assert.equal(tail.filter((line) => line === 'price: 5 €').length, 2, tail.join('\n'));
    assert.ok(!tail.some((line) => line.includes('\ufffd')), tail.join('\n'));
  });

  test('bytes of a character a process left unfinished stay with it, not with the next launch\'s first line', async (t) => {
    const marker = join(mkdtempSync(join(tmpdir(), 'norikae-first-run-')), 'ran');
    t.after(() => rmSync(dirname(marker), { recursive: true, force: true }));
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server} --first-run-partial-utf8 ${marker} --record {record}"\n`);
    assert.equal((await h.get('app.localhost')).status, 502);
    assert.equal((await h.get('app.localhost')).status, 200);
    const tail = h.supervisor.logTail('app', 10);
    assert.ok(tail.includes('first \ufffd'), tail.join('\n'));
    assert.ok(tail.some((line) => /^dev server listening on \d+$/.test(line)), tail.join('\n'));
  });

  test('service output goes to a log file readable by the user only', async (t) => {
    const h = await start(t, `[service.app]\nport = ${await freePort()}\ncommand = "{server}"\n`);
    assert.equal((await h.get('app.localhost')).status, 200);
    const file = join(h.dir, 'logs', 'app.log');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('dev server listening'), 'the log file');
    assert.match(readFileSync(file, 'utf8'), /--- norikae: launching on port \d+: node /);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });
});

describe('reloading', () => {
  test('a port changed while the service runs applies from its next launch; until then the running process is used', async (t) => {
    const portA = await freePort();
    const portB = await freePort();
    // ready_timeout: should a request wait for a launch on B, it fails in 3 s, not the default.
    const table = (port: number): string => `[service.app]\nport = ${port}\ncommand = "{server} --record {record}"\nready_timeout = 3\n`;
    const h = await start(t, table(portA));
    const first = JSON.parse((await h.get('app.localhost')).body) as { pid: number; port: number };
    assert.equal(first.port, portA);
    await h.reconfigure(table(portB));
    const response = await h.get('app.localhost');
    assert.equal(response.status, 200, response.body);
    const again = JSON.parse(response.body) as { pid: number; port: number };
    assert.deepEqual([again.pid, again.port], [first.pid, portA]);
    assert.equal(h.launches().length, 1, 'no launch');
    assert.equal(h.log.lines.filter((line) => line.startsWith('launching app')).length, 1);
    const changed = h.supervisor.info('app')!;
    assert.equal(changed.state, 'running');
    assert.equal(changed.pendingRestart, true);
    assert.equal(changed.port, portA, 'the running process listens on the old port');

    await h.supervisor.restart('app');
    const restarted = h.supervisor.info('app')!;
    assert.equal(restarted.port, portB);
    assert.equal(restarted.pendingRestart, false);
    const after = JSON.parse((await h.get('app.localhost')).body) as { pid: number; port: number };
    assert.equal(after.port, portB);
    assert.notEqual(after.pid, first.pid);
    assert.deepEqual(h.launches().map((launch) => launch.port), [portA, portB]);
    assert.equal(isLiveProcess(first.pid), false);
  });
});
