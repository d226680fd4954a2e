// `terminal = true` and `norikae-splice attach`: a service that asks a question on its terminal
// and waits for the answer. The user's terminal is an outer tmux session of the test's own, in
// which `attach` runs; the test types into it (send-keys) and reads it (capture-pane).

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { groupAlive } from '../lib/process-group.js';
import { CLI, DEV_SERVER, exchange, exitWithin, freePort, getHead, parseResponse, waitFor } from './helpers.js';
import { requireTool, TMUX } from './system-tools.js';

/** What each test started, stopped after it: before its folder is removed (after-hooks run in registration order). */
const cleanups = new WeakMap<TestContext, (() => Promise<void> | void)[]>();

/** A temporary folder (state, logs, sockets), removed after the test, once what it started is stopped. */
function tempDir(t: TestContext): string {
  const stops: (() => Promise<void> | void)[] = [];
  cleanups.set(t, stops);
  t.after(async () => {
    for (const stop of stops) await stop();
  });
  const dir = mkdtempSync(join(tmpdir(), 'norikae-term-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The CLI with its state in `dir`; stopped (by PID) after the test if still running. */
function startCli(t: TestContext, dir: string, args: string[]): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', XDG_STATE_HOME: join(dir, 'state') } });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  cleanups.get(t)!.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exitWithin(child, 10_000, 'norikae-splice').catch(() => child.kill('SIGKILL'));
  });
  return Object.assign(child, { output: () => output });
}

describe('terminal = true', () => {
  test('a service on a terminal: attach answers its prompt, it goes on, and detaching leaves it running', async (t) => {
    const tmux = requireTool(t, TMUX);
    if (tmux === undefined) return;
    const dir = tempDir(t);
    const [http, upstream] = [await freePort(), await freePort()];
    const config = join(dir, 'norikae.toml');
    writeFileSync(config, [
      `listen = "127.0.0.1:${http}"`,
      `log_dir = "${dir}/logs"`,
      '[service.asker]',
      'terminal = true',
      `port = ${upstream}`,
      // A prompt that waits for a line on stdin, like a debugger's; then the dev server. `-t 0`
      // says whether stdin is a terminal.
      `command = "if [ -t 0 ]; then echo on-a-terminal; fi; echo 'What is your name?'; read answer; echo \\"hello $answer\\"; exec node ${DEV_SERVER}"`,
      'ready = { log = "What is your name" }',
      '',
    ].join('\n'));
    const norikae = startCli(t, dir, ['--config', config]);
    await waitFor(() => /listening on http/.test(norikae.output()), 'norikae-splice to listen', 10_000);
    const started = startCli(t, dir, ['start', 'asker', '--config', config]);
    assert.equal(await exitWithin(started, 15_000, 'start'), 0, started.output());
    const log = join(dir, 'logs', 'asker.log');
    assert.match(readFileSync(log, 'utf8'), /on-a-terminal\r?\nWhat is your name\?/, 'its output reaches the log file, and stdin is a terminal');

    // The user's terminal: an outer tmux of the test's own, running `attach` and then saying how it ended.
    const outer = join(dir, 'outer.sock');
    const attach = `${process.execPath} ${CLI} attach asker --config ${config}; echo "attach exited $?"; sleep 60`;
    const made = spawnSync(tmux, ['-S', outer, 'new-session', '-d', '-s', 'user', '-x', '120', '-y', '40', '-e', `XDG_STATE_HOME=${join(dir, 'state')}`, attach], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const outerServer = Number(spawnSync(tmux, ['-S', outer, 'display-message', '-p', '#{pid}'], { encoding: 'utf8' }).stdout.trim());
    cleanups.get(t)!.push(() => {
      try {
        process.kill(outerServer, 'SIGTERM');
      } catch {
        // gone already
      }
    });
    const screen = (): string => spawnSync(tmux, ['-S', outer, 'capture-pane', '-p', '-t', '=user:'], { encoding: 'utf8' }).stdout;
    await waitFor(() => screen().includes('What is your name?'), `the prompt on the attached terminal:\n${screen()}`, 10_000);
    spawnSync(tmux, ['-S', outer, 'send-keys', '-t', '=user:', 'Ada', 'Enter']);
    await waitFor(() => screen().includes('hello Ada'), `the service's answer on the attached terminal:\n${screen()}`, 10_000);
    // The answer, and the dev server it goes on to, reach the log file (the readiness check saw
    // only the prompt: the server is asked once it says it listens).
    await waitFor(() => /hello Ada\r?\n[^]*dev server listening on/.test(readFileSync(log, 'utf8')), 'the answer and the server in the log file', 10_000);

    // tmux's detach key gives the terminal back; attach exits 0 and the service keeps running.
    spawnSync(tmux, ['-S', outer, 'send-keys', '-t', '=user:', 'C-b', 'd']);
    await waitFor(() => screen().includes('attach exited 0'), `attach to exit after the detach key:\n${screen()}`, 10_000);
    const response = parseResponse(await exchange(t, http, [getHead('asker.localhost', '/after-detach')]));
    assert.equal(response.status, 200);
    assert.equal(JSON.parse(response.body).url, '/after-detach');
    const status = startCli(t, dir, ['status', '--config', config]);
    await exitWithin(status, 10_000, 'status');
    const pid = Number(/asker\s+running\s+(\d+)/.exec(status.output())?.[1]);
    assert.ok(pid > 0, status.output());

    // A stop reaches the whole group the pane's shell leads, and ends the session.
    const stop = startCli(t, dir, ['stop', 'asker', '--config', config]);
    assert.equal(await exitWithin(stop, 15_000, 'stop'), 0, stop.output());
    assert.equal(groupAlive(pid), false, 'nothing of the service is left');
    const inner = spawnSync(tmux, ['-S', join(dir, 'state', 'norikae', readStateSocket(join(dir, 'state', 'norikae'))), 'has-session', '-t', '=asker'], { stdio: 'ignore' });
    assert.notEqual(inner.status, 0, 'its tmux session is gone');
  });

  test('attach refuses a service that is not on a terminal, and one that is not running', async (t) => {
    const tmux = requireTool(t, TMUX);
    if (tmux === undefined) return;
    const dir = tempDir(t);
    const config = join(dir, 'norikae.toml');
    writeFileSync(config, '[service.plain]\nport = 3000\ncommand = "true"\n[service.tty]\nport = 3001\ncommand = "true"\nterminal = true\n');
    const plain = startCli(t, dir, ['attach', 'plain', '--config', config]);
    assert.equal(await exitWithin(plain, 10_000, 'attach'), 1);
    assert.match(plain.output(), /plain does not run on a terminal: set `terminal = true` in \[service\.plain\]/);
    const tty = startCli(t, dir, ['attach', 'tty', '--config', config]);
    assert.equal(await exitWithin(tty, 10_000, 'attach'), 1);
    assert.match(tty.output(), /tty has no terminal now: it is not running \(start it with `norikae-splice start tty`\)/);
  });
});

describe('terminal in the config', () => {
  test('a top-level default that a service overrides; services without a command are not on one', (t) => {
    if (requireTool(t, TMUX) === undefined) return;
    const config = parseConfig('terminal = true\n[service.a]\ncommand = "x"\n[service.b]\ncommand = "x"\nterminal = false\n[service.c]\nport = 3000\n', '/n.toml');
    assert.deepEqual(config.services.map((service) => service.terminal), [true, false, false]);
  });

  test('where tmux is missing, terminal = true is refused with the command that installs it', () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      assert.throws(() => parseConfig('[service.a]\ncommand = "x"\nterminal = true\n', '/n.toml'),
        /\/n\.toml:3:1: terminal = true runs the command in tmux, which is not on PATH; install it with `(sudo apt-get|brew) install tmux`/);
    } finally {
      process.env.PATH = path;
    }
  });
});

/** The one tmux socket in the state folder. */
function readStateSocket(dir: string): string {
  return readdirSync(dir).find((name) => name.endsWith('.sock'))!;
}
