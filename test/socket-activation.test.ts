// Socket activation: Debian's own systemd-socket-activate binds the ports and starts the real CLI
// on the first connection, handing it the sockets as systemd does (LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES). norikae-splice must serve on them without binding anything itself.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { inheritedSockets, InheritedListeners, listenerFdName } from '../lib/socket-activation.js';
import { CLI, DEV_SERVER, exchange, exitWithin, freePort, getHead, parseResponse, waitFor } from './helpers.js';
import { requireTool, SYSTEMD_SOCKET_ACTIVATE } from './system-tools.js';

describe('inheritedSockets', () => {
  test('takes nothing meant for another process, and unsets the variables either way', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: String(process.pid + 1), LISTEN_FDNAMES: 'http-80:tcp-pg-5433', OTHER: 'x' };
    assert.deepEqual(inheritedSockets(env), []);
    assert.deepEqual(env, { OTHER: 'x' });
  });

  test('numbers the sockets from 3, named in order ("unknown" where systemd gave no name)', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'http-80' };
    const sockets = inheritedSockets(env);
    assert.deepEqual(sockets.map(({ fd, name }) => ({ fd, name })), [{ fd: 3, name: 'http-80' }, { fd: 4, name: 'unknown' }]);
    assert.deepEqual(env, {});
  });

  test('no LISTEN_FDS, or a malformed count: nothing', () => {
    assert.deepEqual(inheritedSockets({ LISTEN_PID: String(process.pid) }), []);
    assert.deepEqual(inheritedSockets({ LISTEN_FDS: 'x', LISTEN_PID: String(process.pid) }), []);
  });
});

describe('InheritedListeners', () => {
  test('hands each socket out once, to the address its name and bound address match', () => {
    const listeners = new InheritedListeners([
      { fd: 3, name: 'http-8080', address: { host: '127.0.0.1', port: 8080 } },
      { fd: 4, name: 'http-8080', address: { host: '::1', port: 8080 } },
      { fd: 5, name: 'tcp-pg-5433', address: { host: '127.0.0.1', port: 5433 } },
      { fd: 6, name: 'myapp.socket', address: { host: '127.0.0.1', port: 9000 } },
    ]);
    assert.deepEqual(listeners.take({ host: '::1', port: 8080 }), { fd: 4 });
    assert.equal(listeners.take({ host: '::1', port: 8080 }), undefined, 'once only');
    assert.equal(listeners.take({ host: '0.0.0.0', port: 8080 }), undefined, 'bound elsewhere: not this address');
    assert.equal(listeners.take({ host: '127.0.0.1', port: 5433 }), undefined, 'a service listener is not an HTTP one');
    assert.deepEqual(listeners.take({ host: '127.0.0.1', port: 5433 }, 'pg'), { fd: 5 });
    // A name that is not one of ours (systemd's default: the unit's name): by bound address alone.
    assert.deepEqual(listeners.take({ host: '127.0.0.1', port: 9000 }), { fd: 6 });
    assert.equal(listenerFdName({ host: '::1', port: 8080 }), 'http-8080');
    assert.equal(listenerFdName({ host: '127.0.0.1', port: 5433 }, 'my-db'), 'tcp-my-db-5433');
  });
});

/** systemd-socket-activate listening on `listen` (one -l each, named by `names`), starting the CLI on `config`. */
function activate(t: TestContext, tool: string, listen: number[], names: string[], config: string): ChildProcess & { output: () => string } {
  const args = [...listen.flatMap((port) => ['-l', `127.0.0.1:${port}`]), ...names.map((name) => `--fdname=${name}`), process.execPath, CLI, '--config', config];
  const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  kills.get(t)!.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return Object.assign(child, { output: () => output });
}

/** What each test started, killed before its folder is removed (after-hooks run in registration order). */
const kills = new WeakMap<TestContext, (() => void)[]>();

function tempDir(t: TestContext): string {
  const list: (() => void)[] = [];
  kills.set(t, list);
  t.after(() => {
    for (const kill of list) kill();
  });
  const dir = mkdtempSync(join(tmpdir(), 'norikae-activation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('norikae-splice started by systemd-socket-activate', () => {
  test('serves on the sockets it was handed, binds none itself, and its services do not inherit them', async (t) => {
    const tool = requireTool(t, SYSTEMD_SOCKET_ACTIVATE);
    if (tool === undefined) return;
    const dir = tempDir(t);
    const [http, raw, stray, upstream] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const config = join(dir, 'norikae.toml');
    const envFile = join(dir, 'env.txt');
    writeFileSync(config, [
      `listen = "127.0.0.1:${http}"`,
      `log_dir = "${dir}/logs"`,
      '[service.web]',
      `port = ${upstream}`,
      `command = "echo \\"LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID\\" > ${envFile}; exec node ${DEV_SERVER}"`,
      'stop_timeout = 2',
      '[service.raw]',
      `listen = ${raw}`,
      `port = ${upstream}`,
      '',
    ].join('\n'));
    const names = [`http-${http}`, `tcp-raw-${raw}`, 'stray'];
    const child = activate(t, tool, [http, raw, stray], names, config);
    // systemd-socket-activate holds the three ports from here on; norikae starts on the first connection.
    await waitFor(() => /Listening on 127\.0\.0\.1:\d+ as 5/.test(child.output()), 'systemd-socket-activate to listen', 10_000);
    const response = parseResponse(await exchange(t, http, [getHead('web.localhost', '/through-activation')]));
    assert.equal(response.status, 200, child.output());
    assert.equal(JSON.parse(response.body).url, '/through-activation');
    const output = child.output();
    assert.match(output, /listening on 2 sockets passed by systemd \(http-\d+, tcp-raw-\d+\)/);
    assert.match(output, new RegExp(`a socket passed by systemd \\(stray, 127\\.0\\.0\\.1:${stray}\\) is not a listen address of the config; closed it`));
    assert.doesNotMatch(output, /cannot listen/);
    // The service's own listener works through its passed socket too.
    const rawResponse = parseResponse(await exchange(t, raw, [getHead('anything')]));
    assert.equal(rawResponse.status, 200);
    assert.equal(readFileSync(envFile, 'utf8').trim(), 'LISTEN_FDS= LISTEN_PID=', 'the services see no LISTEN_* variables');
    // Still the process systemd-socket-activate started (it execs): it bound nothing, so the
    // ports it holds are those the kernel shows for its pid alone.
    const sockets = listeningPortsOf(child.pid!);
    assert.deepEqual(sockets.sort(), [http, raw].sort(), 'the stray socket was closed, nothing else is listened on');
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 10_000, 'norikae-splice'), 0);
  });

  test('exit_when_idle: exits on its own once nothing runs and no connection is open', async (t) => {
    const tool = requireTool(t, SYSTEMD_SOCKET_ACTIVATE);
    if (tool === undefined) return;
    const dir = tempDir(t);
    const http = await freePort();
    const config = join(dir, 'norikae.toml');
    writeFileSync(config, `listen = "127.0.0.1:${http}"\nexit_when_idle = 0.5\nlog_dir = "${dir}/logs"\n[service.web]\ncommand = "exec node ${DEV_SERVER}"\nidle_timeout = 0.5\n`);
    const child = activate(t, tool, [http], [`http-${http}`], config);
    await waitFor(() => /Listening on 127\.0\.0\.1:\d+ as 3/.test(child.output()), 'systemd-socket-activate to listen', 10_000);
    const response = parseResponse(await exchange(t, http, [getHead('web.localhost')]));
    assert.equal(response.status, 200, child.output());
    // The service stops after its idle_timeout, then norikae exits after exit_when_idle.
    assert.equal(await exitWithin(child, 15_000, 'norikae-splice'), 0, child.output());
    assert.match(child.output(), /stopping web \(idle for 0\.5 s\)/);
    assert.match(child.output(), /idle for 0\.5 s \(exit_when_idle\): exiting/);
  });

  test('an open connection keeps it from exiting when idle', async (t) => {
    const tool = requireTool(t, SYSTEMD_SOCKET_ACTIVATE);
    if (tool === undefined) return;
    const dir = tempDir(t);
    const http = await freePort();
    const config = join(dir, 'norikae.toml');
    writeFileSync(config, `listen = "127.0.0.1:${http}"\nexit_when_idle = 0.3\nlog_dir = "${dir}/logs"\n`);
    const child = activate(t, tool, [http], [`http-${http}`], config);
    await waitFor(() => /Listening on 127\.0\.0\.1:\d+ as 3/.test(child.output()), 'systemd-socket-activate to listen', 10_000);
    const socket = connect({ host: '127.0.0.1', port: http });
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    await waitFor(() => /listening on 1 socket passed by systemd/.test(child.output()), 'norikae-splice to start', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(child.exitCode, null, `exited with a connection open: ${child.output()}`);
    socket.destroy();
    assert.equal(await exitWithin(child, 10_000, 'norikae-splice'), 0, child.output());
  });
});

/** The TCP ports process `pid` listens on, from its descriptors and /proc/net/tcp. */
function listeningPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirOrEmpty(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
  }
  return ports;
}

function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
