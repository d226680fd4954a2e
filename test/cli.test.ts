// The real CLI as a child process: what a user types and sees.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { isLiveProcess } from '../lib/process-group.js';
import {
  CLI, closeServer, connectTo, delay, DEV_SERVER, exchange, freePort, exitWithin, getHead, listenOn, parseResponse, startCli, startHttpUpstream,
  waitFor,
} from './helpers.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

async function runCli(t: TestContext, args: string[], cwd?: string): Promise<Run> {
  const child = startCli(t, args, cwd);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  await new Promise((resolve) => setImmediate(resolve));
  return { code, signal, ...child.output() };
}

/** A temporary folder with a config file in it, removed after the test. */
function configDir(t: TestContext, toml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'norikae.toml'), toml);
  return dir;
}

/** A CommonJS file `--require`d before the CLI runs, in `dir`. */
function writeProbe(dir: string, source: string): string {
  const file = join(dir, 'probe.cjs');
  writeFileSync(file, source);
  return file;
}

/** Waits until the running CLI has printed its listening line; returns the port. */
async function listeningPort(child: ReturnType<typeof startCli>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.output().stderr);
    if (match) return Number(match[1]);
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the CLI did not start listening: ${child.output().stderr}`);
}

describe('norikae-splice check', () => {
  test('prints the routing table of a valid config and exits 0', async (t) => {
    const dir = configDir(t, 'listen = 8080\n[service.web]\nhost = ["web.localhost", "*.web.localhost"]\nport = 3000\ncommand = "npm run dev"\n');
    const run = await runCli(t, ['check'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /web {2}http:\/\/web\.localhost:8080, http:\/\/\*\.web\.localhost:8080 → 127\.0\.0\.1:3000 {2}\(command: npm run dev\)/);
    assert.match(run.stdout, /config is valid/);
  });

  test('a config error names file, line and column, shows the line, and exits non-zero', async (t) => {
    const dir = configDir(t, '[service.web]\nport = 3000\ncomand = "npm run dev"\n');
    const run = await runCli(t, ['check', '--config', join(dir, 'norikae.toml')]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`norikae: error: ${join(dir, 'norikae.toml').replace(/[.]/g, '\\.')}:3:1: unknown key "comand".*did you mean "command"`));
    assert.match(run.stderr, /3 \| comand = "npm run dev"\n {2}\| \^/);
    assert.doesNotMatch(run.stderr, /at .*\.js:\d+/, 'no stack trace');
  });

  test('warns, one line each with file:line:column, of a cwd or a program a launch would not find, and still exits 0', async (t) => {
    const dir = configDir(t, [
      '[service.web]', 'port = 3000', 'command = "norikae-no-such-program --port {port}"', '',
      '[service.api]', 'port = 3001', 'command = "node api.js"', 'cwd = "gone"', '',
      '[service.ok]', 'port = 3002', 'command = "cd . && exec node x.js"', '',
    ].join('\n'));
    const run = await runCli(t, ['check'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /config is valid/);
    const file = join(dir, 'norikae.toml');
    assert.deepEqual(run.stderr.split('\n').filter((line) => line.includes('warning')), [
      `norikae: warning: ${file}:3:1: web: "norikae-no-such-program" (the program of its command) is not on PATH, so the launch will fail with "not found"`,
      `norikae: warning: ${file}:8:1: api: cwd ${join(dir, 'gone')} does not exist, so its command cannot start`,
    ]);
  });

  test('the bundled demo config is valid', async (t) => {
    const run = await runCli(t, ['check', '-c', 'examples/norikae.toml']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /hello .*http:\/\/hello\.localhost:8080/);
  });

  test('no config anywhere says where it looked', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-empty-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [CLI, 'check'], { cwd: dir, env: { ...process.env, XDG_CONFIG_HOME: dir } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(stderr, /no config file found.*--config/);
  });
});

describe('the built command', () => {
  test('is one bundled file: it imports none of the package\'s modules, only Node\'s own', () => {
    // ~70 ES modules take Node about 100 ms more to load than one file of the same code: the
    // build bundles the command (`npm run bundle`). A build that drops that step fails here.
    const source = readFileSync(CLI, 'utf8');
    const specifiers = [...source.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)/gm)]
      .map((match) => match[1] ?? match[2]!);
    assert.ok(specifiers.includes('node:fs'), `the bundle's imports were read (${specifiers.length})`);
    assert.deepEqual(specifiers.filter((specifier) => !specifier.startsWith('node:')), []);
  });
});

describe('command line errors', () => {
  test('an unknown command or option is a clear error, not a stack trace or a silent exit', async (t) => {
    const command = await runCli(t, ['frobnicate']);
    assert.equal(command.code, 1);
    assert.match(command.stderr, /unknown command "frobnicate"/);
    const option = await runCli(t, ['--frobnicate']);
    assert.equal(option.code, 1);
    assert.match(option.stderr, /Unknown option "--frobnicate"/);
    const listen = await runCli(t, ['check', '-c', 'examples/norikae.toml', '--listen', 'nowhere']);
    assert.equal(listen.code, 1);
    assert.match(listen.stderr, /--listen nowhere: "nowhere" is not "host:port"/);
  });

  test('--listen replaces `listen` before the addresses are checked: a clash with it is a config error, one with the replaced value is none', async (t) => {
    const dir = configDir(t, '[service.pg]\nlisten = 15433\nport = 5432\n');
    const run = await runCli(t, ['check', '--listen', '15433'], dir);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /norikae\.toml:2:1: 127\.0\.0\.1:15433 is also the --listen of norikae-splice \(127\.0\.0\.1:15433\)/);
    // The file's default listen is 127.0.0.1:80: a dev server on port 80 is fine once --listen moves norikae away.
    const nginx = configDir(t, '[service.nginx]\nport = 80\n');
    const moved = await runCli(t, ['check', '--listen', '8080'], nginx);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal((await runCli(t, ['check'], nginx)).code, 2);
  });

  test('words after a command that takes one name or none say so, not "unknown command"', async (t) => {
    const dir = configDir(t, '[service.hello]\nport = 3000\n');
    const stop = await runCli(t, ['stop', 'hello', 'extra'], dir);
    assert.equal(stop.code, 1);
    assert.match(stop.stderr, /^norikae: error: stop takes one service name; got "hello extra"$/m);
    assert.doesNotMatch(stop.stderr, /unknown command/);
    const status = await runCli(t, ['status', 'hello'], dir);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /^norikae: error: status takes no arguments; got "hello"$/m);
  });

  test('--help says what --listen means for each command: where to listen, or where the running one is', async (t) => {
    const run = await runCli(t, ['--help']);
    assert.match(run.stdout, /--listen <address> +Listen on host:port or a port instead of the config's `listen`/);
    const check = await runCli(t, ['check', '--help']);
    assert.match(check.stdout, /--listen <address> +Check the config as if run with this --listen/);
    for (const command of ['status', 'logs', 'start', 'stop', 'restart']) {
      const help = await runCli(t, [command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--listen <address> +Where the running norikae-splice listens/, command);
      assert.doesNotMatch(help.stdout, /Listen on/, command);
    }
  });

  test('--version and --help', async (t) => {
    const version = await runCli(t, ['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /norikae-splice\/0\.\d+\.\d+/);
    const help = await runCli(t, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /check/);
    assert.match(help.stdout, /--config/);
  });
});

describe('norikae-splice (run)', () => {
  test('serves the config, --listen overrides it, and SIGTERM exits cleanly', async (t) => {
    const upstream = await startHttpUpstream(t);
    const dir = configDir(t, `listen = 1\n[service.web]\nhost = "web.localhost"\nport = ${upstream.port}\n`);
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir);
    const port = await listeningPort(child);
    assert.match(child.output().stderr, /web {2}http:\/\/web\.localhost:\d+ → 127\.0\.0\.1:\d+/);
    const response = parseResponse(await exchange(t, port, [getHead('web.localhost', '/hi')]));
    assert.equal(response.status, 200);
    assert.match(response.body, /"url":"\/hi"/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });

  test('DEBUG=norikae:* traces what it does; without DEBUG the `debug` package is not even loaded', async (t) => {
    const upstream = await startHttpUpstream(t);
    const dir = configDir(t, `[service.web]\nhost = "web.localhost"\nport = ${upstream.port}\n`);
    // Says at exit which files of the `debug` package were loaded.
    const probe = writeProbe(dir, 'const r = require("node:module").createRequire(process.argv[1]);'
      + 'process.on("exit", () => console.log(JSON.stringify(Object.keys(r.cache).filter((f) => /[\\/]node_modules[\\/]debug[\\/]/.test(f)))));');
    const run = async (env: NodeJS.ProcessEnv): Promise<{ stderr: string; debugFiles: string[] }> => {
      const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env, ['--require', probe]);
      const port = await listeningPort(child);
      assert.equal(parseResponse(await exchange(t, port, [getHead('web.localhost')])).status, 200);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, child.output().stderr);
      const { stdout, stderr } = child.output();
      return { stderr, debugFiles: JSON.parse(stdout.trim().split('\n').at(-1)!) as string[] };
    };
    const traced = await run({ DEBUG: 'norikae:*' });
    assert.match(traced.stderr, /norikae:server splice 127\.0\.0\.1:\d+ → web/);
    assert.notDeepEqual(traced.debugFiles, []);
    // Loaded, it would cost every start several ms of CPU to enable nothing.
    const quiet = await run({ DEBUG: undefined });
    assert.doesNotMatch(quiet.stderr, /norikae:server/);
    assert.deepEqual(quiet.debugFiles, []);
  });

  test('says at start what a launch would not find, as check does', async (t) => {
    const dir = configDir(t, '[service.web]\nport = 3000\ncommand = "norikae-no-such-program {port}"\n');
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir);
    await listeningPort(child);
    await waitFor(() => /warning: .*norikae\.toml:3:1: web: "norikae-no-such-program"/.test(child.output().stderr), 'the warning');
    child.kill('SIGTERM');
    await once(child, 'exit');
  });

  test('listening beyond loopback prints a warning', async (t) => {
    const dir = configDir(t, '[service.web]\nport = 3000\n');
    const child = startCli(t, ['--listen', '0.0.0.0:0'], dir);
    for (let i = 0; i < 200 && !/listening on/.test(child.output().stderr); i++) await delay(25);
    assert.match(child.output().stderr, /warning: listening beyond loopback: every machine that can reach this address can start the configured commands/);
    child.kill('SIGTERM');
    await once(child, 'exit');
    const loopback = startCli(t, ['--listen', '127.0.0.1:0'], dir);
    await listeningPort(loopback);
    assert.doesNotMatch(loopback.output().stderr, /warning/);
    loopback.kill('SIGTERM');
    await once(loopback, 'exit');

    // A service's own listener beyond loopback is as open.
    const tcpPort = await freePort();
    const open = configDir(t, `[service.db]\nlisten = "0.0.0.0:${tcpPort}"\nport = 5432\n`);
    const withService = startCli(t, ['--listen', '127.0.0.1:0'], open);
    await listeningPort(withService);
    await waitFor(() => /db listening on tcp/.test(withService.output().stderr), 'the service listener');
    assert.match(withService.output().stderr, new RegExp(`warning: db listens beyond loopback on 0\\.0\\.0\\.0:${tcpPort}: every machine that can reach it can start its command`));
  });

  test('a port in use is an error that says what to do', async (t) => {
    const blocker = createServer();
    await listenOn(blocker);
    t.after(() => closeServer(blocker));
    const dir = configDir(t, '[service.web]\nport = 3000\n');
    const run = await runCli(t, ['--listen', String((blocker.address() as { port: number }).port)], dir);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /already in use.*--listen/);
  });
});

/**
 * A config in a temporary folder, with `log_dir` and the given service tables; `record` is a file
 * where the services' processes write "pid port". Every recorded pid still alive is SIGKILLed after the test.
 */
function serviceConfig(t: TestContext, service: (record: string) => string): { dir: string; file: string; env: NodeJS.ProcessEnv; pids: () => number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-cli-'));
  const record = join(dir, 'launches.txt');
  const file = join(dir, 'norikae.toml');
  const pids = (): number[] => {
    try {
      return readFileSync(record, 'utf8').trim().split('\n').filter(Boolean).map((line) => Number(line.split(' ')[0]));
    } catch {
      return [];
    }
  };
  // One hook, in this order: the record is read before its folder is removed.
  t.after(() => {
    for (const pid of pids()) if (isLiveProcess(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(file, `log_dir = "logs"\n${service(record)}`);
  return { dir, file, env: { XDG_STATE_HOME: join(dir, 'state') }, pids };
}

describe('launched services and the CLI', () => {
  /** A config whose service runs the dev-server fixture below two shells, recording its pid. */
  async function launchingConfig(t: TestContext): Promise<{ dir: string; env: NodeJS.ProcessEnv; pids: () => number[] }> {
    const port = await freePort();
    return serviceConfig(t, (record) => `[service.app]\nport = ${port}\ncommand = "sh -c 'node ${DEV_SERVER} --record ${record}'"\n`);
  }

  test('SIGTERM stops every service norikae launched, grandchildren included', async (t) => {
    const { dir, env, pids } = await launchingConfig(t);
    const child = startCli(t, ['--listen', '127.0.0.1:0', '--service-output'], dir, env);
    const port = await listeningPort(child);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    const [server] = pids();
    assert.equal(isLiveProcess(server!), true);
    assert.match(child.output().stderr, /app \| dev server listening on \d+/, '--service-output streams the service output');
    assert.match(child.output().stderr, /launching app: sh -c/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.equal(isLiveProcess(server!), false);
    assert.match(child.output().stderr, /stopping app \(norikae-splice is exiting\)/);
  });

  test('after a SIGKILL of norikae, its next start stops the services it had launched, and nothing else', async (t) => {
    const { dir, env, pids } = await launchingConfig(t);
    const first = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(first);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const [orphan] = pids();
    assert.equal(isLiveProcess(orphan!), true, 'the service outlives a SIGKILLed norikae');

    // A process group whose PID the record names but that is not ours (as after PID reuse).
    const bystander = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    t.after(() => bystander.kill('SIGKILL'));
    const stateDir = join(dir, 'state', 'norikae');
    const [recordName] = readdirSync(stateDir).filter((name) => /^launched-[0-9a-f]{12}\.json$/.test(name));
    const record = JSON.parse(readFileSync(join(stateDir, recordName!), 'utf8')) as { launched: unknown[] };
    assert.equal(record.launched.length, 1);
    // Named by the start time of the process that had its pid before (reused since), and as an older record named groups.
    record.launched.push({ launchId: 'reused', pgid: bystander.pid, service: 'ghost', processes: [{ pid: bystander.pid, started: '1' }] });
    record.launched.push({ launchId: 'not-the-bystanders-id', pgid: bystander.pid, service: 'ghost' });
    writeFileSync(join(stateDir, recordName!), JSON.stringify(record));

    const second = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    await listeningPort(second);
    assert.match(second.output().stderr, /stopping app \(pid [\d, ]+\), left running by a previous norikae-splice\n.*stopped what the previous norikae-splice left running \(app\)/);
    for (let i = 0; i < 100 && isLiveProcess(orphan!); i++) await delay(20);
    assert.equal(isLiveProcess(orphan!), false);
    assert.equal(isLiveProcess(bystander.pid!), true);
    assert.doesNotMatch(second.output().stderr, /ghost/);
  });

  test('after a SIGKILL of norikae, its next start also stops a service that cleared its environment (as redis does)', async (t) => {
    const servicePort = await freePort();
    const { dir, env } = serviceConfig(t, () => `[service.app]\nport = ${servicePort}\ncommand = "exec env -i sleep 600"\nready_timeout = 60\n`);
    const first = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(first);
    // sleep never listens: the request launches it and waits; norikae is killed meanwhile.
    const client = await connectTo(t, port);
    client.write(getHead('app.localhost'));
    const stateDir = join(dir, 'state', 'norikae');
    const launched = (): { pgid: number }[] => {
      try {
        const [name] = readdirSync(stateDir).filter((file) => /^launched-[0-9a-f]{12}\.json$/.test(file));
        return (JSON.parse(readFileSync(join(stateDir, name!), 'utf8')) as { launched: { pgid: number }[] }).launched;
      } catch {
        return [];
      }
    };
    await waitFor(() => launched().length === 1, 'the launch in the record');
    const sleeper = launched()[0]!.pgid;
    t.after(() => {
      if (isLiveProcess(sleeper)) process.kill(sleeper, 'SIGKILL');
    });
    await waitFor(() => readFileSync(`/proc/${sleeper}/cmdline`, 'latin1').startsWith('sleep\0'), 'the exec of sleep');
    assert.equal(readFileSync(`/proc/${sleeper}/environ`, 'latin1'), '', 'sleep runs with an empty environment');
    first.kill('SIGKILL');
    await once(first, 'exit');
    assert.equal(isLiveProcess(sleeper), true, 'the service outlives a SIGKILLed norikae');

    const second = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    await listeningPort(second);
    assert.match(second.output().stderr, new RegExp(`stopping app \\(pid ${sleeper}\\), left running by a previous norikae-splice\\n`
      + '.*stopped what the previous norikae-splice left running \\(app\\)'));
    for (let i = 0; i < 100 && isLiveProcess(sleeper); i++) await delay(20);
    assert.equal(isLiveProcess(sleeper), false);
  });
});

describe('processes that leave the group (setsid)', () => {
  /** The `sleep 7777` processes launched for the service on `port`: their environment names it. */
  function ourSleeps(port: number): number[] {
    return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'latin1') === 'sleep\x007777\x00' && isLiveProcess(pid)
          && readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`PORT=${port}`);
      } catch {
        return false;
      }
    });
  }

  /** The service of the issue: `setsid sleep 7777 & exec node web.mjs {port}`. Every sleep of ours is killed after the test. */
  async function setsidConfig(t: TestContext): Promise<{ dir: string; env: NodeJS.ProcessEnv; port: number }> {
    const port = await freePort();
    const { dir, env } = serviceConfig(t, (record) => `[service.app]\nport = ${port}\ncommand = "setsid sleep 7777 & exec node ${DEV_SERVER} --record ${record} --port {port}"\n`);
    t.after(() => {
      for (const pid of ourSleeps(port)) process.kill(pid, 'SIGKILL');
    });
    return { dir, env, port };
  }

  async function launched(t: TestContext, dir: string, env: NodeJS.ProcessEnv, servicePort: number): Promise<{ cli: ReturnType<typeof startCli>; sleeper: number }> {
    const cli = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(cli);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    await waitFor(() => ourSleeps(servicePort).length === 1, 'the setsid sleep');
    const [sleeper] = ourSleeps(servicePort);
    // It did leave the group: a signal to the group does not reach it.
    assert.equal(readFileSync(`/proc/${sleeper}/stat`, 'latin1').split(') ')[1]!.split(' ')[2], String(sleeper), 'sleep leads a group (and session) of its own');
    return { cli, sleeper: sleeper! };
  }

  test('`stop` reaches it', async (t) => {
    const { dir, env, port } = await setsidConfig(t);
    const { cli } = await launched(t, dir, env, port);
    const stop = startCli(t, ['stop', 'app', '--config', join(dir, 'norikae.toml')], dir, env);
    assert.equal(await exitWithin(stop, 15_000, 'norikae-splice stop'), 0, stop.output().stderr);
    await waitFor(() => ourSleeps(port).length === 0, 'the end of sleep 7777 after stop', 5000);
    cli.kill('SIGTERM');
    await exitWithin(cli, 15_000, 'norikae');
  });

  test('norikae\'s exit on SIGTERM reaches it', async (t) => {
    const { dir, env, port } = await setsidConfig(t);
    const { cli } = await launched(t, dir, env, port);
    cli.kill('SIGTERM');
    assert.equal(await exitWithin(cli, 15_000, 'norikae'), 0);
    assert.deepEqual(ourSleeps(port), []);
  });

  test('after a SIGKILL of norikae, the next start\'s orphan clean-up reaches it', async (t) => {
    const { dir, env, port } = await setsidConfig(t);
    const { cli, sleeper } = await launched(t, dir, env, port);
    // It is in the record once a walk of the launch's processes has seen it (once a second).
    const stateDir = join(dir, 'state', 'norikae');
    const recorded = (): boolean => {
      try {
        const [name] = readdirSync(stateDir).filter((file) => /^launched-[0-9a-f]{12}\.json$/.test(file));
        return readFileSync(join(stateDir, name!), 'utf8').includes(`"pid": ${sleeper},`);
      } catch {
        return false;
      }
    };
    await waitFor(recorded, 'sleep 7777 in the launch record', 5000);
    cli.kill('SIGKILL');
    await once(cli, 'exit');
    assert.deepEqual(ourSleeps(port), [sleeper], 'it outlives a SIGKILLed norikae');
    const second = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    await listeningPort(second);
    assert.match(second.output().stderr, new RegExp(`stopping app \\(pid [\\d, ]*\\b${sleeper}\\b[\\d, ]*\\), left running by a previous norikae-splice`));
    await waitFor(() => ourSleeps(port).length === 0, 'the end of sleep 7777 after the clean-up', 5000);
    second.kill('SIGTERM');
    await exitWithin(second, 15_000, 'the second norikae');
  });
});

/** The processes below `pid` (children, grandchildren, …), from /proc. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const found: number[] = [];
  for (let frontier = [pid]; frontier.length > 0;) {
    const children = [...parents].filter(([, parent]) => frontier.includes(parent)).map(([child]) => child);
    found.push(...children);
    frontier = children;
  }
  return found;
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

describe('one norikae per config, and signals', () => {

  test('a second norikae on the same config refuses to start, and the first one\'s service keeps serving', async (t) => {
    const appPort = await freePort();
    const { dir, env, pids } = serviceConfig(t, (record) => `[service.app]\nport = ${appPort}\ncommand = "sh -c 'node ${DEV_SERVER} --record ${record}'"\n`);
    const first = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(first);
    const served = parseResponse(await exchange(t, port, [getHead('app.localhost')]));
    assert.equal(served.status, 200);
    const [server] = pids();
    assert.equal((JSON.parse(served.body) as { pid: number }).pid, server);

    const second = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const code = await exitWithin(second, 15_000, 'the second norikae');
    assert.notEqual(code, 0);
    assert.match(second.output().stderr, new RegExp(`already running with this config \\(pid ${first.pid}\\)`));
    assert.doesNotMatch(second.output().stderr, /left running by a previous norikae-splice/);

    assert.equal(isLiveProcess(server!), true, 'the first one\'s service is alive');
    const after = parseResponse(await exchange(t, port, [getHead('app.localhost')]));
    assert.equal(after.status, 200);
    assert.equal((JSON.parse(after.body) as { pid: number }).pid, server, 'served by the same process, not relaunched');
    assert.equal(first.exitCode, null, 'the first norikae still runs');
    // It still owns its service: it stops it on its way out.
    first.kill('SIGTERM');
    assert.equal(await exitWithin(first, 15_000, 'the first norikae'), 0);
    assert.equal(isLiveProcess(server!), false);
  });

  /** A service whose server ignores SIGTERM: its graceful stop lasts the whole stop_timeout (20 s). */
  function stubbornService(record: string): string {
    const script = join(dirname(record), 'stubborn.cjs');
    writeFileSync(script, `process.on('SIGTERM', () => console.log('ignoring SIGTERM'));\n`
      + `require('node:fs').appendFileSync(${JSON.stringify(record)}, process.pid + ' ' + process.env.PORT + '\\n');\n`
      + `require('node:http').createServer((req, res) => res.end('stubborn')).listen(Number(process.env.PORT), '127.0.0.1');\n`);
    return `[service.app]\nstop_timeout = 20\ncommand = "node ${script}"\n`;
  }

  test('a second SIGINT during a graceful stop SIGKILLs the services and exits 130', async (t) => {
    const { dir, env, pids } = serviceConfig(t, stubbornService);
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(child);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    const [server] = pids();
    assert.equal(isLiveProcess(server!), true);

    child.kill('SIGINT');
    await waitFor(() => /stopping app \(norikae-splice is exiting\)/.test(child.output().stderr), 'the graceful stop');
    await delay(300);
    assert.equal(isLiveProcess(server!), true, 'the service ignores SIGTERM: the graceful stop is still waiting');
    assert.equal(child.exitCode, null);

    child.kill('SIGINT');
    assert.equal(await exitWithin(child, 10_000, 'norikae after the second SIGINT'), 130);
    // Well within the 20 s the graceful stop would have waited.
    await waitFor(() => !isLiveProcess(server!), 'the service to be killed', 8_000);
  });

  test('a second SIGINT also kills a service a reload removed that is still being stopped', async (t) => {
    const { dir, file, env, pids } = serviceConfig(t, stubbornService);
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(child);
    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    const [server] = pids();
    writeFileSync(file, 'log_dir = "logs"\n[service.other]\nport = 1\n');
    await waitFor(() => /stopping app \(removed from the config\)/.test(child.output().stderr), 'the stop of the removed service');
    child.kill('SIGINT');
    await waitFor(() => /SIGINT: closing/.test(child.output().stderr), 'the graceful stop');
    child.kill('SIGINT');
    assert.equal(await exitWithin(child, 10_000, 'norikae after the second SIGINT'), 130);
    await waitFor(() => !isLiveProcess(server!), 'the removed service to be killed', 8_000);
  });

  test('SIGHUP in a terminal exits like Ctrl-C and stops the services', async (t) => {
    const appPort = await freePort();
    const { dir, file, env, pids } = serviceConfig(t, (record) => `[service.app]\nport = ${appPort}\ncommand = "sh -c 'node ${DEV_SERVER} --record ${record}'"\n`);
    const port = await freePort();
    // util-linux script runs norikae under a pseudo-terminal: its stderr is a TTY.
    const terminal = spawn('script', ['-qfec', `${process.execPath} ${CLI} --config ${file} --listen 127.0.0.1:${port}`, '/dev/null'], {
      cwd: dir, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', ...env },
    });
    let output = '';
    terminal.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk.replace(/\x1b\[[0-9;]*m/g, '')));
    terminal.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    let norikaePid: number | undefined;
    t.after(async () => {
      if (norikaePid !== undefined && isLiveProcess(norikaePid)) {
        process.kill(norikaePid, 'SIGTERM');
        for (let i = 0; i < 250 && isLiveProcess(norikaePid); i++) await delay(20);
        if (isLiveProcess(norikaePid)) process.kill(norikaePid, 'SIGKILL');
      }
      if (terminal.exitCode === null && terminal.signalCode === null) terminal.kill('SIGKILL');
    });
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(output), `norikae in the terminal to listen (output: ${output})`);
    // The node process itself, not script or its shell: the one whose command line is the CLI.
    norikaePid = descendants(terminal.pid!).find((pid) => {
      const argv = commandLine(pid);
      return argv[1] === CLI && argv.includes(file);
    });
    assert.ok(norikaePid !== undefined, 'found norikae under script');

    assert.equal(parseResponse(await exchange(t, port, [getHead('app.localhost')])).status, 200);
    const [server] = pids();
    assert.equal(isLiveProcess(server!), true);

    process.kill(norikaePid, 'SIGHUP');
    await waitFor(() => !isLiveProcess(norikaePid!), 'norikae to exit on SIGHUP', 15_000);
    assert.equal(isLiveProcess(server!), false, 'the service was stopped');
    assert.match(output, /SIGHUP: closing/);
    assert.match(output, /stopping app \(norikae-splice is exiting\)/);
    assert.doesNotMatch(output, /config reloaded/);
    await exitWithin(terminal, 10_000, 'script');
  });

  test('the commands work when the file\'s own listen would clash but the running norikae was moved with --listen', async (t) => {
    const upstream = await startHttpUpstream(t);
    // The file's listen is the dev server's port: fine to run with --listen elsewhere, and the
    // commands to that running instance must not refuse the file for it.
    const { dir, env } = serviceConfig(t, () => `listen = ${upstream.port}\n[service.web]\nport = ${upstream.port}\n`);
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    await listeningPort(child);
    const status = startCli(t, ['status'], dir, env);
    assert.equal(await exitWithin(status, 10_000, 'status'), 0, status.output().stderr);
    assert.match(status.output().stdout, /^web +stopped/m);
  });

  test('status lists the services in config order, and a wildcard-only service at its wildcard', async (t) => {
    const upstream = await startHttpUpstream(t);
    const tcpPort = await freePort();
    const { dir, env } = serviceConfig(t, () => [
      `[service.zeta]\nport = ${upstream.port}`,
      `[service.py]\nhost = "*.py.localhost"\nport = ${upstream.port}`,
      `[service.alpha]\nlisten = ${tcpPort}\nport = ${upstream.port}`,
      '',
    ].join('\n'));
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    const port = await listeningPort(child);
    const status = startCli(t, ['status'], dir, env);
    assert.equal(await exitWithin(status, 10_000, 'status'), 0, status.output().stderr);
    const rows = status.output().stdout.trimEnd().split('\n').slice(1).map((line) => line.split(/ +/));
    assert.deepEqual(rows.map((row) => [row[0], row.at(-1)]), [
      ['zeta', `http://zeta.localhost:${port}/`],
      ['py', `http://*.py.localhost:${port}/`],
      ['alpha', `127.0.0.1:${tcpPort}`],
    ]);
  });

  test('the commands find a norikae started with --listen, where its state file says it listens', async (t) => {
    const upstream = await startHttpUpstream(t);
    const configPort = await freePort();
    const { dir, env } = serviceConfig(t, () => `listen = ${configPort}\n[service.web]\nport = ${upstream.port}\n`);
    const child = startCli(t, ['--listen', '127.0.0.1:0'], dir, env);
    await listeningPort(child);
    const status = startCli(t, ['status'], dir, env);
    assert.equal(await exitWithin(status, 10_000, 'status'), 0, status.output().stderr);
    assert.match(status.output().stdout, /^web +stopped/m);
    // With --listen, the command asks where it is told: nothing listens on the config's port.
    const elsewhere = startCli(t, ['status', '--listen', String(configPort)], dir, env);
    assert.equal(await exitWithin(elsewhere, 10_000, 'status --listen'), 1);
    assert.match(elsewhere.output().stderr, /no norikae-splice is running/);
  });
});
