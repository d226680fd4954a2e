// The control surface through the real CLI: status/logs/start/stop/restart against a running
// norikae-splice, and config hot reload with a spliced connection kept open across it.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { isLiveProcess } from '../lib/process-group.js';
import {
  CLI, closeServer, connectTo, delay, DEV_SERVER, exchange, freePort, exitWithin, getHead, listenOn, nextData, parseResponse, startHttpUpstream, waitFor,
} from './helpers.js';

interface Instance {
  dir: string;
  port: number;
  child: ChildProcess;
  stderr: () => string;
  /** Runs a one-shot CLI command against the same config; resolves with its exit code and output. */
  run: (...args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;
  writeConfig: (toml: string) => void;
  /** The config text writeConfig would write for `toml` (with `listen` and `log_dir`). */
  configText: (toml: string) => string;
  /** The file writeConfig writes (with `symlinked`, the file the link points to). */
  file: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Starts the CLI on a config in a temporary folder, with a free port written into `listen`. With
 * `symlinked`, the config passed with --config is a symlink to a file in another temporary folder.
 */
async function startInstance(t: TestContext, services: string, options: { symlinked?: boolean } = {}): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-control-'));
  /** Removed once norikae has exited: while it runs, it may write its state into them. */
  const dirs = [dir];
  const port = await freePort();
  let file = join(dir, 'norikae.toml');
  const args: string[] = [];
  if (options.symlinked === true) {
    const elsewhere = mkdtempSync(join(tmpdir(), 'norikae-control-target-'));
    dirs.push(elsewhere);
    file = join(elsewhere, 'real.toml');
    symlinkSync(file, join(dir, 'linked.toml'));
    args.push('--config', join(dir, 'linked.toml'));
  }
  const configText = (toml: string): string => `listen = ${port}\nlog_dir = "logs"\n${toml}`;
  const writeConfig = (toml: string): void => writeFileSync(file, configText(toml));
  writeConfig(services);
  const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), DEBUG: '' };
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    for (const path of dirs) rmSync(path, { recursive: true, force: true });
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  for (let i = 0; !stderr.includes('listening on'); i++) {
    if (i > 200 || child.exitCode !== null) throw new Error(`norikae did not start: ${stderr}`);
    await delay(25);
  }
  const run = async (...commandArgs: string[]) => {
    const command = spawn(process.execPath, [CLI, ...commandArgs, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let err = '';
    command.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    command.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const [code] = (await once(command, 'exit')) as [number | null];
    return { code, stdout, stderr: err };
  };
  return { dir, port, child, stderr: () => stderr, run, writeConfig, configText, file, env };
}

describe('CLI against a running instance', () => {
  test('status, start, logs, stop and restart', async (t) => {
    const upstreamPort = await freePort();
    const norikae = await startInstance(t, `[service.app]\nport = ${upstreamPort}\ncommand = "node ${DEV_SERVER}"\n`);

    const before = await norikae.run('status');
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /^NAME +STATE +PID +PORT +CONNS +UPTIME +URL\n/);
    assert.match(before.stdout, new RegExp(`app +stopped +- +${upstreamPort} +0 +- +http://app\\.localhost:${norikae.port}/`));

    const started = await norikae.run('start', 'app');
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^app: running \(pid \d+\)$/m);
    assert.match((await norikae.run('status')).stdout, /app +running +\d+ /);

    const logs = await norikae.run('logs', 'app', '-n', '5');
    assert.match(logs.stdout, /dev server listening on \d+/);

    const stopped = await norikae.run('stop', 'app');
    assert.match(stopped.stdout, /^app: stopped$/m);
    assert.match((await norikae.run('status')).stdout, /app +stopped \(by you\)/);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 503);

    const restarted = await norikae.run('restart', 'app');
    assert.match(restarted.stdout, /^app: running/m);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 200);

    const unknown = await norikae.run('start', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no service named nope/);
  });

  test('logs -f prints the recent lines, then follows new ones', async (t) => {
    const norikae = await startInstance(t, `[service.app]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 200);
    const follower = spawn(process.execPath, [CLI, 'logs', 'app', '-f'], { cwd: norikae.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_STATE_HOME: join(norikae.dir, 'state') } });
    t.after(() => follower.kill('SIGKILL'));
    let followed = '';
    follower.stdout.setEncoding('utf8').on('data', (chunk: string) => (followed += chunk));
    const listening = (): number => followed.match(/dev server listening/g)?.length ?? 0;
    await waitFor(() => listening() === 1, 'the recent line');
    // A crash and a relaunch print the line again, after the follower attached.
    await exchange(t, norikae.port, [getHead('app.localhost', '/crash')]);
    await waitFor(() => /app exited with code 70/.test(norikae.stderr()), 'the crash');
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 200);
    await waitFor(() => listening() === 2, 'the followed line');
  });

  test('logs -f suspended (SIGSTOP, as Ctrl-Z does) while its service prints a lot says how many lines it missed', async (t) => {
    const chatty = fileURLToPath(new URL('./fixtures/chatty-server.js', import.meta.url));
    const norikae = await startInstance(t, `[service.chatty]\nport = ${await freePort()}\ncommand = "node ${chatty}"\n`);
    assert.equal((await norikae.run('start', 'chatty')).code, 0);
    const follower = spawn(process.execPath, [CLI, 'logs', 'chatty', '-f', '-n', '1'], { cwd: norikae.dir, stdio: ['ignore', 'pipe', 'pipe'], env: norikae.env });
    t.after(() => follower.kill('SIGKILL'));
    let followed = '';
    follower.stdout.setEncoding('utf8').on('data', (chunk: string) => (followed += chunk));
    await waitFor(() => /chatty server listening/.test(followed), 'the recent line');
    follower.kill('SIGSTOP');
    // 40 MB of output: far more than the socket buffers between norikae and the stopped follower hold.
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('chatty.localhost', '/print?lines=200000')])).status, 200);
    // norikae has read them all (the fixture answers once its pipe took them, not once norikae read them).
    for (let i = 0; !/printed 200000 lines/.test((await norikae.run('logs', 'chatty', '-n', '1')).stdout); i++) {
      if (i > 100) assert.fail('norikae did not read the last line');
      await delay(100);
    }
    follower.kill('SIGCONT');
    // The kernel takes several MB for the stopped follower, so norikae catches it up (a marker) and
    // drops again more than once while it is stopped. It has caught up once every line of the
    // 200,001 (and "printed …") is printed or counted in a marker.
    const accounted = (): number => (followed.match(/^line \d+ /gm)?.length ?? 0) + (followed.match(/^printed 200000 lines$/m) ? 1 : 0)
      + [...followed.matchAll(/^… (\d+) lines dropped: this follower fell behind …$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    await waitFor(() => accounted() === 200_001, 'every line printed or counted as dropped', 30_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; ${accounted()} of 200001`);
    });
    assert.match(followed, /\n… \d+ lines dropped: this follower fell behind …\n/);
    // It follows again: a line printed now is printed.
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('chatty.localhost', '/print?lines=3')])).status, 200);
    await waitFor(() => /printed 3 lines/.test(followed), 'a line printed after it caught up', 30_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; it printed last: ${JSON.stringify(followed.slice(-600))}`);
    });
  });

  test('with no instance running, the CLI says so and exits non-zero', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-control-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'norikae.toml'), `listen = ${await freePort()}\n[service.app]\nport = 1\n`);
    const child = spawn(process.execPath, [CLI, 'status'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(stderr, /no norikae-splice is running for .*norikae\.toml \(nothing listens on 127\.0\.0\.1:\d+\)/);
  });
});

describe('hot reload', () => {
  test('add, change, bad edit and remove, with a spliced connection kept open throughout', async (t) => {
    const first = await startHttpUpstream(t);
    // The kept connection must outlive every step, however slow the machine (the default closes it after 5 s idle).
    first.server.keepAliveTimeout = 0;
    const second = await startHttpUpstream(t);
    const appPort = await freePort();
    const app = `[service.app]\nport = ${appPort}\ncommand = "node ${DEV_SERVER}"\n`;
    const norikae = await startInstance(t, `${app}[service.one]\nport = ${first.port}\n`);

    // A keep-alive connection spliced to "one" before any reload.
    const kept = await connectTo(t, norikae.port);
    const keptRequest = async (): Promise<string> => {
      kept.write('GET /kept HTTP/1.1\r\nHost: one.localhost\r\n\r\n');
      const chunk = await nextData(kept, 'the answer on the kept connection');
      return chunk.toString();
    };
    assert.match(await keptRequest(), /"url":"\/kept"/);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 200);

    // Add a service.
    norikae.writeConfig(`${app}[service.one]\nport = ${first.port}\n[service.two]\nport = ${second.port}\n`);
    await waitFor(() => /config reloaded \(file changed\): added two/.test(norikae.stderr()), 'the reload');
    const two = JSON.parse(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).body) as { port: number };
    assert.equal(two.port, second.port);

    // Change app's command while it runs: it keeps running; the dashboard says a restart applies it.
    const changed = `${app.replace('"node', '"FOO=x node')}[service.one]\nport = ${first.port}\n[service.two]\nport = ${second.port}\n`;
    norikae.writeConfig(changed);
    await waitFor(() => /changed app/.test(norikae.stderr()), 'the change');
    const status = await norikae.run('status');
    assert.match(status.stdout, /app +running \(restart to apply\)/);
    const info = await new Promise<string>((resolve) => {
      void exchange(t, norikae.port, [getHead(`norikae.localhost:${norikae.port}`, '/api/services/app')]).then((raw) => resolve(parseResponse(raw).body));
    });
    assert.equal((JSON.parse(info) as { pendingRestart: boolean }).pendingRestart, true);

    // A bad edit: the error names line and column; the running config stays.
    norikae.writeConfig(`${app}[service.one]\nport = ${first.port}\ncomand = "x"\n`);
    await waitFor(() => /comand/.test(norikae.stderr()), 'the error');
    assert.match(norikae.stderr(), /norikae\.toml:8:1: unknown key "comand".*\(keeping the running config\)/);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).status, 200);
    // Fixing it back to what runs changes nothing, and says the file is good again.
    norikae.writeConfig(changed);
    await waitFor(() => /the config file is valid again, and the same as the running config/.test(norikae.stderr()), 'the word on the fix');

    // Remove app and two: app's process is stopped, both hosts are gone.
    norikae.writeConfig(`[service.one]\nport = ${first.port}\n`);
    await waitFor(() => /removed app, two/.test(norikae.stderr()), 'the removal');
    await waitFor(() => /stopping app \(removed from the config\)/.test(norikae.stderr()), 'the stop');
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).status, 404);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 404);

    // SIGHUP reloads too.
    norikae.child.kill('SIGHUP');
    await waitFor(() => /config reloaded \(SIGHUP\)/.test(norikae.stderr()), 'the SIGHUP reload');

    // The connection from before every reload still works.
    assert.match(await keptRequest(), /"url":"\/kept"/);
  });

  test('an edit of only a ready.log pattern is a change, not a save that changes nothing', async (t) => {
    const port = await freePort();
    const service = (pattern: string): string => `[service.app]\nport = ${port}\ncommand = "node ${DEV_SERVER}"\nready = { log = "${pattern}" }\n`;
    const norikae = await startInstance(t, service('listening'));
    norikae.writeConfig(service('listening on'));
    await waitFor(() => /config reloaded \(file changed\): changed app/.test(norikae.stderr()), 'the reload');
  });
});

/** GET on the dashboard host of the instance; the JSON body and the status. */
async function apiGet(t: TestContext, port: number, path: string): Promise<{ status: number; body: any }> {
  const response = parseResponse(await exchange(t, port, [getHead(`norikae.localhost:${port}`, path)]));
  return { status: response.status, body: response.headers['content-type']?.startsWith('application/json') ? JSON.parse(response.body) : response.body };
}

/** True when a connection to 127.0.0.1:port is refused (nothing listens there). */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** Reads GET /api/events of the instance; the events so far, parsed. Closed after the test. */
async function openEvents(t: TestContext, port: number): Promise<{ event: string; data: any }[]> {
  const events: { event: string; data: any }[] = [];
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const req = request({ host: '127.0.0.1', port, path: '/api/events', headers: { host: `norikae.localhost:${port}` } }, (res) => {
    assert.equal(res.statusCode, 200);
    let buffered = '';
    res.setEncoding('utf8');
    res.on('error', () => {});
    res.on('data', (chunk: string) => {
      buffered += chunk;
      for (let end; (end = buffered.indexOf('\n\n')) !== -1;) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (block.startsWith(': norikae-splice events')) opened();
        const event = /^event: (.*)$/m.exec(block)?.[1];
        if (event) events.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) });
      }
    });
  });
  req.on('error', () => {});
  req.end();
  t.after(() => req.destroy());
  await open;
  return events;
}

/** Pids recorded by the dev-server fixture's --record FILE (one "pid port" line per launch). */
function recorded(file: string): { pid: number; port: number }[] {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => {
      const [pid, port] = line.split(' ').map(Number);
      return { pid: pid!, port: port! };
    });
  } catch {
    return [];
  }
}

/** A folder for a --record file; whatever the recorded pids are is SIGKILLed after the test if still alive. */
function recordFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-control-record-'));
  const file = join(dir, 'launches.txt');
  t.after(() => {
    for (const { pid } of recorded(file)) if (isLiveProcess(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return file;
}

describe('reload fixes', () => {
  test('a log_dir edited while norikae runs applies at the next start, to every service alike', async (t) => {
    const one = `[service.one]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`;
    const norikae = await startInstance(t, one);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('one.localhost')])).status, 200);
    const two = `[service.two]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`;
    writeFileSync(norikae.file, `listen = ${norikae.port}\nlog_dir = "logs-new"\n${one}${two}`);
    await waitFor(() => /config reloaded \(file changed\): added two/.test(norikae.stderr()), 'the reload');
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).status, 200);
    await waitFor(() => existsSync(join(norikae.dir, 'logs', 'two.log')), 'two.log in the log_dir norikae started with');
    assert.equal(existsSync(join(norikae.dir, 'logs-new')), false);
  });

  test('a reload may not point a service at the running listener, even when it also edits `listen` (which applies at the next start)', async (t) => {
    const upstream = await startHttpUpstream(t);
    const norikae = await startInstance(t, `[service.a]\nport = ${upstream.port}\n`);
    writeFileSync(norikae.file, `listen = ${await freePort()}\nlog_dir = "logs"\n[service.a]\nport = ${norikae.port}\n`);
    await waitFor(() => /would connect back to norikae-splice; give its dev server a port of its own \(keeping the running config\)/.test(norikae.stderr()), 'the refusal');
    assert.match(norikae.stderr(), new RegExp(`port ${norikae.port} is a listener of the running norikae-splice \\(127\\.0\\.0\\.1:${norikae.port}\\)`));
    assert.doesNotMatch(norikae.stderr(), /config reloaded/);
    const body = JSON.parse(parseResponse(await exchange(t, norikae.port, [getHead('a.localhost')])).body) as { port: number };
    assert.equal(body.port, upstream.port, 'a still goes to its old upstream');
  });

  test('a reload whose new listener cannot be bound changes nothing; saving it again once the port is free applies it', async (t) => {
    const a = await startHttpUpstream(t);
    const b = await startHttpUpstream(t);
    const held = createTcpServer();
    await listenOn(held);
    const heldPort = (held.address() as { port: number }).port;
    t.after(() => (held.listening ? closeServer(held) : undefined));
    const serviceA = `[service.a]\nport = ${a.port}\n`;
    const withB = `${serviceA}[service.b]\nhost = "b.localhost"\nport = ${b.port}\nlisten = ${heldPort}\n`;
    const norikae = await startInstance(t, serviceA);

    norikae.writeConfig(withB);
    await waitFor(() => /already in use/.test(norikae.stderr()), 'the listen error', 15_000);
    assert.match(norikae.stderr(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${heldPort} \\(the \`listen\` of service b\\): the port is already in use`
      + '[^\\n]*give \\[service\\.b\\] another `listen` port in the config file\\. \\(keeping the running config\\)'));
    assert.doesNotMatch(norikae.stderr(), /config reloaded/);
    // The router did not change: b is not routed, a still is.
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('b.localhost')])).status, 404);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('a.localhost')])).status, 200);
    // Once the test lets go of the port, nothing listens there: norikae did not bind it.
    await closeServer(held);
    assert.equal(await refusesConnections(heldPort), true, 'norikae holds no listener on the port');

    // The same config saved again is a reload now (the refused one was not taken as the running one).
    norikae.writeConfig(withB);
    await waitFor(() => /config reloaded \(file changed\): added b/.test(norikae.stderr()), 'the reload', 15_000);
    const spliced = parseResponse(await exchange(t, heldPort, [getHead('whatever.example', '/raw')]));
    assert.equal(spliced.status, 200);
    assert.equal((JSON.parse(spliced.body) as { port: number }).port, b.port, 'the listener splices to b');
    const routed = parseResponse(await exchange(t, norikae.port, [getHead('b.localhost')]));
    assert.equal(routed.status, 200);
    assert.equal((JSON.parse(routed.body) as { port: number }).port, b.port);
  });

  test('a port edited while the service runs applies from its next launch; `restart` (CLI) moves it', async (t) => {
    const record = recordFile(t);
    const portA = await freePort();
    const portB = await freePort();
    const service = (port: number): string => `[service.app]\nport = ${port}\nready_timeout = 10\ncommand = "node ${DEV_SERVER} --record ${record}"\n`;
    const norikae = await startInstance(t, service(portA));
    const first = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(first.status, 200);
    const launched = JSON.parse(first.body) as { pid: number; port: number };
    assert.equal(launched.port, portA);

    norikae.writeConfig(service(portB));
    await waitFor(() => /config reloaded \(file changed\): changed app/.test(norikae.stderr()), 'the reload', 15_000);
    // The running process still serves, on A: no relaunch, no wait for ready_timeout, no 504.
    const after = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(after.status, 200, after.body);
    assert.deepEqual(JSON.parse(after.body).pid, launched.pid);
    const info = await apiGet(t, norikae.port, '/api/services/app');
    assert.equal(info.body.state, 'running');
    assert.equal(info.body.pendingRestart, true);
    assert.equal(info.body.port, portA);
    assert.equal(recorded(record).length, 1, 'launched once');

    const restarted = await norikae.run('restart', 'app');
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.match(restarted.stdout, /^app: running \(pid \d+\)$/m);
    const moved = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(moved.status, 200, moved.body);
    assert.equal((JSON.parse(moved.body) as { port: number }).port, portB);
    const infoAfter = await apiGet(t, norikae.port, '/api/services/app');
    assert.equal(infoAfter.body.port, portB);
    assert.equal(infoAfter.body.pendingRestart, false);
    assert.deepEqual(recorded(record).map((launch) => launch.port), [portA, portB]);
  });

  test('the event stream announces a reload (`config`) and the added service; the page reloads its list on it', async (t) => {
    const upstream = await startHttpUpstream(t);
    const norikae = await startInstance(t, `[service.old]\nport = ${upstream.port}\n[service.kept]\nport = ${upstream.port}\n`);
    const events = await openEvents(t, norikae.port);
    norikae.writeConfig(`[service.kept]\nport = ${upstream.port}\n[service.two]\nport = ${upstream.port}\n`);
    await waitFor(() => /config reloaded \(file changed\): added two; removed old/.test(norikae.stderr()), 'the reload', 15_000);
    await waitFor(() => events.some((e) => e.event === 'config'), 'event: config');
    await waitFor(() => events.some((e) => e.event === 'service' && e.data.name === 'two'), 'event: service for two');
    const two = events.find((e) => e.event === 'service' && e.data.name === 'two')!;
    assert.equal(two.data.state, 'stopped');
    assert.deepEqual(two.data.urls, [`http://two.localhost:${norikae.port}/`]);
    const list = await apiGet(t, norikae.port, '/api/services');
    assert.deepEqual((list.body.services as { name: string }[]).map((s) => s.name), ['kept', 'two']);

    // The page's script reloads its list on `config` (the browser test covers the rest of the page).
    const page = await apiGet(t, norikae.port, '/');
    assert.equal(page.status, 200);
    assert.match(page.body as string, /<script src="\/dashboard\.js"><\/script>/);
    const script = await apiGet(t, norikae.port, '/dashboard.js');
    assert.equal(script.status, 200);
    assert.match(script.body as string, /\.addEventListener\(\s*'config'\s*,\s*\(event\)\s*=>\s*\{[^}]*\bloadServices\(\);\s*\}\)/);
    assert.match(script.body as string, /function loadServices\(/);
  });

  test('a symlinked config file reloads when the file it points to is edited in place or replaced by a rename', async (t) => {
    const upstream = await startHttpUpstream(t);
    const norikae = await startInstance(t, `[service.one]\nport = ${upstream.port}\n`, { symlinked: true });
    assert.match(norikae.stderr(), /linked\.toml/);

    // Written in place (same inode).
    norikae.writeConfig(`[service.one]\nport = ${upstream.port}\n[service.two]\nport = ${upstream.port}\n`);
    await waitFor(() => /config reloaded \(file changed\): added two/.test(norikae.stderr()), 'the reload after an in-place write', 15_000);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).status, 200);

    // Saved as editors do: a new file renamed over the target.
    const temporary = `${norikae.file}.tmp`;
    writeFileSync(temporary, norikae.configText(`[service.one]\nport = ${upstream.port}\n[service.two]\nport = ${upstream.port}\n[service.three]\nport = ${upstream.port}\n`));
    renameSync(temporary, norikae.file);
    await waitFor(() => /config reloaded \(file changed\): added three/.test(norikae.stderr()), 'the reload after a rename-over save', 15_000);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('three.localhost')])).status, 200);
  });
});

describe('a launch that cannot start', () => {
  test('says why on stderr, in status, in the API and in logs, not only in the HTTP answer', async (t) => {
    const norikae = await startInstance(t, `[service.app]\nport = ${await freePort()}\ncwd = "/nonexistent/project"\ncommand = "node ${DEV_SERVER}"\n`);
    const why = 'cannot launch app: its cwd /nonexistent/project is not a folder';
    const answer = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(answer.status, 502);
    assert.match(answer.body, new RegExp(why));
    await waitFor(() => norikae.stderr().includes(`norikae: warning: app failed to start: ${why}`), 'the reason on stderr');
    const status = await norikae.run('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^app +failed /m);
    assert.match(status.stdout, new RegExp(`^app failed to start: ${why}$`, 'm'));
    const info = await apiGet(t, norikae.port, '/api/services/app');
    assert.equal(info.body.state, 'failed');
    assert.equal(info.body.lastError, why);
    const logs = await norikae.run('logs', 'app');
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, new RegExp(`^norikae: failed to start: ${why}$`, 'm'));
  });
});

describe('CLI fixes', () => {
  test('logs: -n 0 prints no lines, -n x is an error naming --lines, and -f exits 0 when norikae stops', async (t) => {
    const record = recordFile(t);
    const norikae = await startInstance(t, `[service.app]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER} --record ${record}"\n`);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')])).status, 200);
    const some = await norikae.run('logs', 'app', '-n', '5');
    assert.match(some.stdout, /dev server listening on \d+/, 'the service has printed lines');

    const none = await norikae.run('logs', 'app', '-n', '0');
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, '');

    const bad = await norikae.run('logs', 'app', '-n', 'x');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--lines x: expected a whole number/);
    assert.equal(bad.stdout, '');

    const follower = spawn(process.execPath, [CLI, 'logs', 'app', '-f'], { cwd: norikae.dir, env: norikae.env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (follower.exitCode === null && follower.signalCode === null) follower.kill('SIGKILL');
    });
    let followed = '';
    let followerErr = '';
    follower.stdout.setEncoding('utf8').on('data', (chunk: string) => (followed += chunk));
    follower.stderr.setEncoding('utf8').on('data', (chunk: string) => (followerErr += chunk));
    await waitFor(() => /dev server listening on \d+/.test(followed), 'the followed lines');

    norikae.child.kill('SIGTERM');
    assert.equal(await exitWithin(norikae.child, 15_000, 'norikae'), 0);
    assert.equal(await exitWithin(follower, 15_000, 'logs -f'), 0, followerErr);
    assert.match(followed, /dev server listening on \d+/);
  });

  test('stop NAME of a server norikae did not start is refused (exit 1), and the server still answers through norikae', async (t) => {
    const upstream = await startHttpUpstream(t);
    const norikae = await startInstance(t, `[service.app]\nport = ${upstream.port}\ncommand = "node ${DEV_SERVER}"\n`);
    const before = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(before.status, 200);
    assert.equal((JSON.parse(before.body) as { port: number }).port, upstream.port, 'the test\'s server answers, nothing was launched');

    const stopped = await norikae.run('stop', 'app');
    assert.equal(stopped.code, 1, stopped.stdout);
    assert.match(stopped.stderr, new RegExp(`app was not started by norikae-splice: .*listens on port ${upstream.port}\\. Stop it where it was started`));
    assert.doesNotMatch(stopped.stdout, /stopped/);

    const after = parseResponse(await exchange(t, norikae.port, [getHead('app.localhost')]));
    assert.equal(after.status, 200, after.body);
    assert.equal((JSON.parse(after.body) as { port: number }).port, upstream.port);
    const info = await apiGet(t, norikae.port, '/api/services/app');
    assert.equal(info.body.stoppedByUser, false);
    assert.doesNotMatch((await norikae.run('status')).stdout, /by you/);
  });
});
