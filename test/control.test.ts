// The control surface through the real CLI: status/logs/start/stop/restart against a running
// norikae-splice, and config hot reload with a spliced connection kept open across it.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  CLI, connectTo, delay, DEV_SERVER, exchange, freePort, getHead, parseResponse, startHttpUpstream, waitFor,
} from './helpers.js';

interface Instance {
  dir: string;
  port: number;
  child: ChildProcess;
  stderr: () => string;
  /** Runs a one-shot CLI command against the same config; resolves with its exit code and output. */
  run: (...args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;
  writeConfig: (toml: string) => void;
}

/** Starts the CLI on a config in a temporary folder, with a free port written into `listen`. */
async function startInstance(t: TestContext, services: string): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-control-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const writeConfig = (toml: string): void => writeFileSync(join(dir, 'norikae.toml'), `listen = ${port}\nlog_dir = "logs"\n${toml}`);
  writeConfig(services);
  const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), DEBUG: '' };
  const child = spawn(process.execPath, [CLI], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  for (let i = 0; !stderr.includes('listening on'); i++) {
    if (i > 200 || child.exitCode !== null) throw new Error(`norikae did not start: ${stderr}`);
    await delay(25);
  }
  const run = async (...args: string[]) => {
    const command = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let err = '';
    command.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    command.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const [code] = (await once(command, 'exit')) as [number | null];
    return { code, stdout, stderr: err };
  };
  return { dir, port, child, stderr: () => stderr, run, writeConfig };
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
    const second = await startHttpUpstream(t);
    const appPort = await freePort();
    const app = `[service.app]\nport = ${appPort}\ncommand = "node ${DEV_SERVER}"\n`;
    const norikae = await startInstance(t, `${app}[service.one]\nport = ${first.port}\n`);

    // A keep-alive connection spliced to "one" before any reload.
    const kept = await connectTo(t, norikae.port);
    const keptRequest = async (): Promise<string> => {
      kept.write('GET /kept HTTP/1.1\r\nHost: one.localhost\r\n\r\n');
      const [chunk] = (await once(kept, 'data')) as [Buffer];
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
    norikae.writeConfig(`${app.replace('"node', '"FOO=x node')}[service.one]\nport = ${first.port}\n[service.two]\nport = ${second.port}\n`);
    await waitFor(() => /changed app/.test(norikae.stderr()), 'the change');
    const status = await norikae.run('status');
    assert.match(status.stdout, /app +running/);
    const info = await new Promise<string>((resolve) => {
      void exchange(t, norikae.port, [getHead(`norikae.localhost:${norikae.port}`, '/api/services/app')]).then((raw) => resolve(parseResponse(raw).body));
    });
    assert.equal((JSON.parse(info) as { pendingRestart: boolean }).pendingRestart, true);

    // A bad edit: the error names line and column; the running config stays.
    norikae.writeConfig(`${app}[service.one]\nport = ${first.port}\ncomand = "x"\n`);
    await waitFor(() => /comand/.test(norikae.stderr()), 'the error');
    assert.match(norikae.stderr(), /norikae\.toml:8:1: unknown key "comand".*\(keeping the running config\)/);
    assert.equal(parseResponse(await exchange(t, norikae.port, [getHead('two.localhost')])).status, 200);

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
