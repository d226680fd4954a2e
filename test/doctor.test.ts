// `norikae-splice doctor`: each check on a real situation (a port held by a server of this test, a
// process group left by a "killed" norikae, a running instance), and its report's shape.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { isSystemd, privilegedPortFix, readUnprivilegedPortStart, runDoctor, type DoctorCheck, type DoctorReport } from '../lib/doctor.js';
import { resolutionFix } from '../lib/host-resolution.js';
import { launchRecordFile } from '../lib/launch-record.js';
import { bootId, groupAlive, processStartTime, signalGroup } from '../lib/process-group.js';
import { chooseTool } from './chromium.js';
import { CLI, cliForOtherUsers, closeServer, delay, freePort, listenOn, runCli } from './helpers.js';

const loopback = async (): Promise<string[]> => ['127.0.0.1', '::1'];

/** A folder with a config in it (`listen` set to a free port unless the TOML sets it), removed after the test. */
async function setup(t: TestContext, toml: string): Promise<{ dir: string; file: string; state: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-doctor-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'norikae.toml');
  writeFileSync(file, /^listen\s*=/m.test(toml) ? toml : `listen = ${await freePort()}\n${toml}`);
  return { dir, file, state: join(dir, 'state') };
}

function only(report: DoctorReport, name: string): DoctorCheck[] {
  return report.checks.filter((check) => check.name === name);
}

/** A TCP server of this test on 127.0.0.1, closed after it; its port. */
async function holdPort(t: TestContext): Promise<number> {
  const server = createServer();
  await listenOn(server);
  t.after(() => closeServer(server));
  return (server.address() as AddressInfo).port;
}

describe('runDoctor', () => {
  test('a healthy setup: every check passes, in order, and no entry has a fix', async (t) => {
    const { dir, file, state } = await setup(t, `[service.web]\ncwd = "."\ncommand = "${process.execPath} server.js {port}"\n`);
    const report = await runDoctor({ config: file, lookup: loopback, stateDir: state });
    assert.equal(report.ok, true, JSON.stringify(report, null, 2));
    assert.deepEqual(report.checks.map((check) => check.name), ['config', 'running', 'listen', 'resolve', 'commands', 'ports', 'launch-record', 'https']);
    for (const check of report.checks) {
      assert.deepEqual(Object.keys(check), ['name', 'ok', 'message']);
      assert.equal(typeof check.message, 'string');
    }
    assert.equal(report.checks[0]!.message, `${file} is valid (1 service)`);
    assert.match(only(report, 'running')[0]!.message, new RegExp(`^no norikae-splice runs this config; start it with: norikae-splice --config ${dir}/norikae\\.toml$`));
    assert.match(only(report, 'listen')[0]!.message, /^127\.0\.0\.1:\d+ can be bound$/);
    assert.equal(only(report, 'resolve')[0]!.message, '2 host names of the config resolve to this machine for every program');
  });

  test('no config: one failed check, and the fix is init', async (t) => {
    const { dir } = await setup(t, '');
    const report = await runDoctor({ config: join(dir, 'missing.toml') });
    assert.deepEqual(report, {
      ok: false,
      checks: [{ name: 'config', ok: false, message: `${join(dir, 'missing.toml')}: cannot read the config file: there is no such file`, fix: 'create one with: norikae-splice init' }],
    });
  });

  test('an invalid config: its error, and where to edit it', async (t) => {
    const { file } = await setup(t, '[service.web]\ncomand = "x"\n');
    const report = await runDoctor({ config: file });
    assert.equal(report.ok, false);
    assert.equal(report.checks.length, 1);
    assert.match(report.checks[0]!.message, /:3:1: unknown key "comand"/);
    assert.equal(report.checks[0]!.fix, `edit ${file} at line 3 (norikae-splice check shows the line)`);
  });

  test('names that do not resolve, or resolve elsewhere: the hosts sync and nss-myhostname fixes', async (t) => {
    const { file } = await setup(t, '[service.web]\nhost = ["web.localhost", "*.web.localhost"]\nport = 3000\n[service.far]\nport = 3001\n');
    const notFound = async (host: string): Promise<string[]> => {
      if (host === 'far.localhost') return ['10.1.2.3'];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    };
    const report = await runDoctor({ config: file, lookup: notFound });
    const [unresolved, elsewhere] = only(report, 'resolve');
    assert.equal(unresolved!.ok, false);
    assert.match(unresolved!.message, /^web\.localhost \(ENOTFOUND\), norikae\.localhost \(ENOTFOUND\) do not resolve for programs that are not browsers/);
    assert.equal(unresolved!.fix, resolutionFix(file));
    assert.match(resolutionFix(file, 'linux'), /sudo env "PATH=\$PATH" norikae-splice hosts sync --config .*norikae\.toml.*install libnss-myhostname/);
    assert.doesNotMatch(resolutionFix(file, 'darwin'), /nss/);
    assert.equal(elsewhere!.message, 'far.localhost resolves to 10.1.2.3, not to this machine');
    assert.equal(report.ok, false);
  });

  test('a listen port in use is named by its process; a privileged one gets the sysctl', async (t) => {
    const port = await holdPort(t);
    const { file } = await setup(t, `listen = ${port}\n`);
    const report = await runDoctor({ config: file, lookup: loopback });
    const [listen] = only(report, 'listen');
    assert.equal(listen!.ok, false);
    assert.match(listen!.message, new RegExp(`^127\\.0\\.0\\.1:${port} is in use by pid ${process.pid} \\(.*node`));
    assert.match(privilegedPortFix(80), /^allow it once with `sudo sysctl -w net\.ipv4\.ip_unprivileged_port_start=80` .*startup service/);
  });

  test('a port below net.ipv4.ip_unprivileged_port_start, checked as a user without privileges', async (t) => {
    const start = readUnprivilegedPortStart();
    if (start === undefined || start <= 1) {
      t.skip(`this machine lets every user bind every port (net.ipv4.ip_unprivileged_port_start=${start ?? 'unknown: no /proc'})`);
      return;
    }
    const port = start - 1;
    const { dir, file } = await setup(t, `listen = ${port}\n`);
    chmodSync(dir, 0o755);
    // As root the bind would succeed: the CLI then runs as nobody.
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    const child = spawn(process.execPath, [uid === undefined ? CLI : cliForOtherUsers(t), 'doctor', '--json', '--config', file], {
      cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', XDG_STATE_HOME: join(dir, 'state') }, ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1);
    const [listen] = only(JSON.parse(stdout) as DoctorReport, 'listen');
    assert.equal(listen!.message, `127.0.0.1:${port}: permission denied (ports below ${start} need privileges)`);
    assert.equal(listen!.fix, privilegedPortFix(port));
  });

  test('a missing cwd and a program not on PATH: one entry each, with its line', async (t) => {
    const { file } = await setup(t, '[service.a]\ncwd = "nowhere"\ncommand = "npm run dev"\n\n[service.b]\ncommand = "no-such-program-xyz --port {port}"\n');
    const commands = only(await runDoctor({ config: file, lookup: loopback }), 'commands');
    assert.equal(commands.length, 2);
    assert.match(commands[0]!.message, /:3:1: a: cwd .*nowhere does not exist/);
    assert.equal(commands[0]!.fix, `create that folder, or fix \`cwd\` at ${file}:3`);
    assert.match(commands[1]!.message, /:7:1: b: "no-such-program-xyz" \(the program of its command\) is not on PATH/);
    assert.equal(commands[1]!.fix, `install that program, or fix \`command\` at ${file}:7`);
  });

  test('a launched service\'s port held by a process norikae did not start is named; a service without a command may be held', async (t) => {
    const port = await holdPort(t);
    const { file } = await setup(t, `[service.web]\nport = ${port}\ncommand = "${process.execPath} x"\n`);
    const [held] = only(await runDoctor({ config: file, lookup: loopback }), 'ports');
    assert.equal(held!.ok, false);
    assert.match(held!.message, new RegExp(`^port ${port} of web is held by pid ${process.pid} \\(.*\\), which norikae-splice did not start`));
    assert.equal(held!.fix, `stop that process (kill ${process.pid}) if it is not web's dev server, or give web another port`);
    const { file: forward } = await setup(t, `[service.web]\nport = ${port}\n`);
    assert.deepEqual(only(await runDoctor({ config: forward, lookup: loopback }), 'ports').map((check) => check.ok), [true]);
  });

  test('a record left by a killed norikae with its service still running; once that stops, a harmless past run', async (t) => {
    const { file, state } = await setup(t, '[service.web]\nport = 3000\n');
    // A norikae that is gone: a process that has exited.
    const owner = spawn(process.execPath, ['-e', '']);
    await once(owner, 'exit');
    // What it launched: a process group of its own that still runs.
    const left = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    t.after(() => signalGroup(left.pid!, 'SIGKILL'));
    await once(left, 'spawn');
    mkdirSync(state, { recursive: true });
    const record = launchRecordFile(state, file);
    writeFileSync(record, JSON.stringify({
      pid: owner.pid, started: '1', boot: bootId(), listening: [],
      launched: [{ launchId: 'x', service: 'web', pgid: left.pid, processes: [{ pid: left.pid, started: processStartTime(left.pid!) }] }],
    }));
    const [stale] = only(await runDoctor({ config: file, lookup: loopback, stateDir: state }), 'launch-record');
    assert.equal(stale!.ok, false);
    assert.equal(stale!.message, `a norikae-splice that was killed left 1 service running: web (pids ${left.pid})`);
    assert.equal(stale!.fix, `start norikae-splice --config ${file} (it stops them first), or stop them: kill -TERM -${left.pid}`);

    signalGroup(left.pid!, 'SIGKILL');
    for (const deadline = performance.now() + 5000; groupAlive(left.pid!) && performance.now() < deadline;) await delay(10);
    const [past] = only(await runDoctor({ config: file, lookup: loopback, stateDir: state }), 'launch-record');
    assert.deepEqual(past, { name: 'launch-record', ok: true, message: `${record} is a past run's; nothing it launched still runs` });
  });
});

describe('norikae-splice doctor (the CLI)', () => {
  test('against a running norikae: it runs, answers, holds its port; --json; the exit status follows ok', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-doctor-running-'));
    const port = await freePort();
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, `listen = ${port}\nlog_dir = "logs"\n[service.web]\nport = ${await freePort()}\n`);
    const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), DEBUG: '' };
    const norikae = spawn(process.execPath, [CLI, '--config', file], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(async () => {
      if (norikae.exitCode === null && norikae.signalCode === null) {
        norikae.kill('SIGTERM');
        await once(norikae, 'exit');
      }
    });
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    let stderr = '';
    norikae.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    for (let i = 0; !stderr.includes('listening on'); i++) {
      if (i > 400 || norikae.exitCode !== null) throw new Error(`norikae did not start: ${stderr}`);
      await delay(25);
    }
    const doctor = spawn(process.execPath, [CLI, 'doctor', '--json', '--config', file], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    doctor.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const [code] = (await once(doctor, 'exit')) as [number | null];
    const report = JSON.parse(stdout) as DoctorReport;
    assert.equal(code, report.ok ? 0 : 1);
    assert.deepEqual(only(report, 'running'), [{ name: 'running', ok: true, message: `norikae-splice runs this config (pid ${norikae.pid}) on 127.0.0.1:${port}, 0 of 1 services up` }]);
    assert.deepEqual(only(report, 'listen'), [{ name: 'listen', ok: true, message: `127.0.0.1:${port}: bound by the norikae-splice that runs this config` }]);
    assert.match(only(report, 'launch-record')[0]!.message, new RegExp(`kept by the running norikae-splice \\(pid ${norikae.pid}\\)`));
    // The resolver of this machine, asked the same way: the check says what it says.
    const resolves = await lookup('web.localhost', { all: true }).then((found) => found.every((entry) => entry.address === '::1' || entry.address.startsWith('127.')), () => false);
    assert.equal(only(report, 'resolve')[0]!.ok, resolves);
    assert.equal(report.ok, report.checks.every((check) => check.ok));

    const text = spawn(process.execPath, [CLI, 'doctor', '--config', file], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = '';
    text.stdout.setEncoding('utf8').on('data', (chunk: string) => (lines += chunk));
    await once(text, 'exit');
    assert.match(lines, new RegExp(`^✓ running: norikae-splice runs this config \\(pid ${norikae.pid}\\)`, 'm'));
    assert.equal(lines.trimEnd().split('\n').length, report.checks.length, 'one line a check');
    for (const check of report.checks.filter((entry) => !entry.ok)) assert.ok(lines.includes(`✗ ${check.name}: ${check.message} — fix: ${check.fix}`));
  });
});

describe('doctor: the local CA behind HTTPS', () => {
  const CERTUTIL = chooseTool(process.env, 'certutil', 'apt-get install libnss3-tools');

  test('with `https` configured: no CA fails, an untrusted one fails, one trusted in an NSS database passes', { skip: CERTUTIL.skip }, async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'norikae-doctor-ca-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const env = { HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config') };
    writeFileSync(join(home, 'norikae.toml'), `listen = ${await freePort()}\nhttps = ${await freePort()}\n[service.web]\nport = ${await freePort()}\n`);
    const https = async (): Promise<DoctorCheck> => {
      const result = await runCli(['doctor', '--json', '--config', 'norikae.toml'], { cwd: home, env });
      return (JSON.parse(result.stdout) as DoctorReport).checks.find((check) => check.name === 'https')!;
    };
    const none = await https();
    assert.equal(none.ok, false);
    assert.match(none.message, /no local CA yet/);
    assert.match(none.fix!, /norikae-splice trust/);

    assert.equal((await runCli(['ca', '--config', 'norikae.toml'], { cwd: home, env })).code, 0);
    const untrusted = await https();
    assert.equal(untrusted.ok, false);
    assert.match(untrusted.message, /trusted nowhere/);

    const trusted = await runCli(['trust', '--no-system', '--config', 'norikae.toml'], { cwd: home, env });
    assert.equal(trusted.code, 0, trusted.stderr);
    const ok = await https();
    assert.equal(ok.ok, true, ok.message);
    assert.match(ok.message, /trusted in Chrome\/Chromium/);
  });

  test('without `https` configured, a missing CA is advice, not a failure', async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'norikae-doctor-ca-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const env = { HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_STATE_HOME: join(home, 'state') };
    writeFileSync(join(home, 'norikae.toml'), `listen = ${await freePort()}\n[service.web]\nport = ${await freePort()}\n`);
    const result = await runCli(['doctor', '--json', '--config', 'norikae.toml'], { cwd: home, env });
    const check = (JSON.parse(result.stdout) as DoctorReport).checks.find((entry) => entry.name === 'https')!;
    assert.equal(check.ok, true);
    assert.match(check.message, /no local CA yet .*for HTTPS: norikae-splice trust/);
  });
});

test('a port held by systemd (the startup service\'s socket unit) is told apart from another program\'s', () => {
  assert.equal(isSystemd({ pid: 1, command: '/sbin/init splash' }), true);
  assert.equal(isSystemd({ pid: 1234, command: '/lib/systemd/systemd --user' }), true);
  assert.equal(isSystemd({ pid: 1234, command: 'systemd --user' }), true);
  assert.equal(isSystemd({ pid: 1234, command: '/usr/bin/systemd-socket-activate -l 8080 node x.js' }), false);
  assert.equal(isSystemd({ pid: 1234, command: 'node server.js' }), false);
});
