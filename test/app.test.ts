// The application as code embeds it: startApp on a real config file, real listeners and a real
// launched process, reloads by edit (good, refused, back to good), and close().

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { startApp, type App } from '../lib/app.js';
import { AlreadyRunningError } from '../lib/errors.js';
import { createCa } from '../lib/local-ca.js';
import { memoryLog } from '../lib/log.js';
import { isLiveProcess } from '../lib/process-group.js';
import { delay, DEV_SERVER, exchange, freePort, getHead, parseResponse, waitFor } from './helpers.js';

/** A folder with a config file and its own state folder (for the launch record), removed after the test. */
function project(t: TestContext, services: string): { dir: string; file: string; write: (services: string) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-app-'));
  const file = join(dir, 'norikae.toml');
  const write = (tables: string): void => writeFileSync(file, `listen = "127.0.0.1:0"\nlog_dir = "logs"\n${tables}`);
  write(services);
  // stateDir() reads it: each test file runs in a process of its own.
  process.env.XDG_STATE_HOME = join(dir, 'state');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, file, write };
}

async function started(t: TestContext, file: string): Promise<{ app: App; log: ReturnType<typeof memoryLog>; port: number }> {
  const log = memoryLog();
  const app = await startApp({ config: file, log, watch: false });
  t.after(() => app.close());
  return { app, log, port: app.addresses()[0]!.port };
}

async function apiServices(t: TestContext, port: number): Promise<{ services: { name: string; state: string }[]; reloadError: string | null }> {
  const response = parseResponse(await exchange(t, port, [getHead(`norikae.localhost:${port}`, '/api/services')]));
  return JSON.parse(response.body);
}

describe('startApp', () => {
  test('wires the config, the listeners, the launcher and the dashboard; close() stops what it launched', async (t) => {
    const { file } = project(t, `[service.web]\nport = ${await freePort()}\ncommand = "node ${DEV_SERVER}"\n`);
    const { app, log, port } = await started(t, file);
    assert.ok(log.lines.some((line) => line.startsWith('listening on http://127.0.0.1:')), log.lines.join('\n'));
    const response = parseResponse(await exchange(t, port, [getHead('web.localhost')]));
    assert.equal(response.status, 200, response.body);
    const { pid } = JSON.parse(response.body) as { pid: number };
    assert.equal((await apiServices(t, port)).services[0]!.state, 'running');
    await app.close();
    assert.equal(isLiveProcess(pid), false, 'the launched server was stopped');
    await app.close(); // a second close is the same close
  });

  test('a second app on the same config is refused while the first runs, also when it names the file through a symlink', async (t) => {
    const { dir, file } = project(t, `[service.web]\nport = ${await freePort()}\n`);
    const link = join(dir, 'link.toml');
    symlinkSync(file, link);
    await started(t, file);
    // The record's owner is this very process, so a second one is told apart by its pid: run it as a child.
    const { execFile } = await import('node:child_process');
    for (const config of [file, link]) {
      const script = `import(${JSON.stringify(new URL('../lib/app.js', import.meta.url).href)}).then(({ startApp }) => startApp({ config: ${JSON.stringify(config)}, log: { info() {}, warn() {}, error() {} } }))`
        + '.then(() => process.exit(0), (err) => { process.stdout.write(err.name + ": " + err.message); process.exit(3); })';
      const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = execFile(process.execPath, ['--input-type=module', '--eval', script], { env: process.env, timeout: 20_000 }, (err, stdout) => {
          resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stdout });
        });
        t.after(() => child.kill('SIGKILL'));
      });
      assert.equal(result.code, 3, `${config}: ${result.stdout}`);
      assert.match(result.stdout, new RegExp(`^${AlreadyRunningError.name}: norikae-splice is already running with this config \\(pid ${process.pid}\\)`));
    }
  });

  test('reload(): a good edit applies, a bad one is refused with its position and shown on the API until a good one', async (t) => {
    const webPort = await freePort();
    const { file, write } = project(t, `[service.web]\nport = ${webPort}\n`);
    const { app, log, port } = await started(t, file);

    write(`[service.web]\nport = ${webPort}\n[service.api]\nport = ${await freePort()}\n`);
    assert.equal(await app.reload(), 'applied');
    assert.deepEqual(app.config.services.map((service) => service.name), ['web', 'api']);
    assert.ok(log.lines.includes('config reloaded (reload): added api'), log.lines.join('\n'));

    write('[service.web]\nport = "eighty"\n');
    assert.equal(await app.reload(), 'refused');
    const refused = await apiServices(t, port);
    assert.match(refused.reloadError!, new RegExp(`^${file.replaceAll('.', '\\.')}:4:1: expected a whole number`));
    assert.deepEqual(refused.services.map((service) => service.name), ['web', 'api'], 'the running config is kept');
    assert.ok(log.lines.some((line) => /^error: .*:4:1: .*\(keeping the running config\)/.test(line)), log.lines.join('\n'));

    // Saved back as it runs: nothing to apply, and the refusal is over.
    write(`[service.web]\nport = ${webPort}\n[service.api]\nport = ${app.config.services[1]!.port}\n`);
    assert.equal(await app.reload('file changed'), 'unchanged');
    assert.equal((await apiServices(t, port)).reloadError, null);
    assert.ok(log.lines.includes('the config file is valid again, and the same as the running config: nothing to apply'));
  });

  test('a reload takes unchanged services as they were; a changed cwd is a pending restart of the running one', async (t) => {
    const apiPort = await freePort();
    const table = (cwd: string, api: number): string => `[service.web]\nport = ${webPort}\ncwd = "${cwd}"\ncommand = "node ${DEV_SERVER}"\n[service.api]\nport = ${api}\n`;
    const webPort = await freePort();
    const { dir, file, write } = project(t, '');
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    write(table('a', apiPort));
    const { app, port } = await started(t, file);
    assert.equal(parseResponse(await exchange(t, port, [getHead('web.localhost')])).status, 200);
    const { pid } = app.supervisor.info('web')!;
    assert.notEqual(pid, null);
    const [web] = app.config.services;

    write(table('a', await freePort()));
    assert.equal(await app.reload('file changed'), 'applied');
    assert.equal(app.config.services[0], web, 'web is the same service as before');
    assert.notEqual(app.config.services[1]!.port, apiPort);
    const kept = app.supervisor.info('web')!;
    assert.deepEqual([kept.pid, kept.pendingRestart], [pid, false]);

    write(table('b', app.config.services[1]!.port!));
    assert.equal(await app.reload('file changed'), 'applied');
    assert.equal(app.config.services[0]!.cwd, join(dir, 'b'));
    const moved = app.supervisor.info('web')!;
    assert.deepEqual([moved.pid, moved.pendingRestart], [pid, true], 'the new cwd applies at the next launch');
  });

  test('the config file is watched: an edit reloads without a call', async (t) => {
    const { file, write } = project(t, `[service.web]\nport = ${await freePort()}\n`);
    const log = memoryLog();
    const app = await startApp({ config: file, log });
    t.after(() => app.close());
    write(`[service.web]\nport = ${await freePort()}\n[service.docs]\nport = ${await freePort()}\n`);
    await waitFor(() => log.lines.includes('config reloaded (file changed): changed web; added docs') || log.lines.includes('config reloaded (file changed): added docs; changed web'),
      'the reload of the edit');
  });

  test('a config symlink pointed at another file: that file\'s edits are watched from then on', async (t) => {
    const { dir } = project(t, '');
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    mkdirSync(a);
    mkdirSync(b);
    const config = (services: string[]): string => `listen = "127.0.0.1:0"\n${services.map((name, i) => `[service.${name}]\nport = ${40001 + i}\n`).join('')}`;
    writeFileSync(join(a, 'norikae.toml'), config(['web']));
    writeFileSync(join(b, 'norikae.toml'), config(['web', 'docs']));
    const link = join(dir, 'norikae.toml');
    rmSync(link);
    symlinkSync(join(a, 'norikae.toml'), link);
    const log = memoryLog();
    const app = await startApp({ config: link, log });
    t.after(() => app.close());
    const names = (): string => app.config.services.map((service) => service.name).join(',');
    // `ln -sfn b/norikae.toml norikae.toml`: a new link renamed over the old one.
    symlinkSync(join(b, 'norikae.toml'), `${link}.new`);
    renameSync(`${link}.new`, link);
    await waitFor(() => names() === 'web,docs', 'the reload of the re-pointed link');
    // An edit of the new target, in place, in a folder that was not watched at the start.
    writeFileSync(join(b, 'norikae.toml'), config(['web', 'docs', 'api']));
    await waitFor(() => names() === 'web,docs,api', `the reload of an edit of the new target (${log.lines.join('; ')})`, 5000);
    // The old target is not the config any more: its edits change nothing.
    writeFileSync(join(a, 'norikae.toml'), config(['web', 'old']));
    await delay(400);
    assert.equal(names(), 'web,docs,api');
  });
});

describe('startApp and the local CA', () => {
  test('a name the existing CA may not sign for is said at start, and on a reload that adds one', async (t) => {
    const { dir, file, write } = project(t, '[service.web]\nport = 1\n');
    // dataDir() reads it when the server is made: this file's process only.
    process.env.XDG_DATA_HOME = join(dir, 'data');
    await createCa(join(dir, 'data', 'norikae'), ['web.localhost']);
    write('[service.web]\nport = 1\n[service.shop]\nhost = "shop.test"\nport = 1\n');
    const { app, log } = await started(t, file);
    assert.ok(log.lines.some((line) => /may not sign for shop\.test .*trust --renew/.test(line)), log.lines.join('\n'));
    const before = log.lines.length;
    write('[service.web]\nport = 1\n[service.shop]\nhost = "shop.test"\nport = 1\n[service.admin]\nhost = "admin.internal"\nport = 1\n');
    assert.equal(await app.reload(), 'applied');
    assert.ok(log.lines.slice(before).some((line) => /may not sign for shop\.test, admin\.internal/.test(line)), log.lines.join('\n'));
  });
});
