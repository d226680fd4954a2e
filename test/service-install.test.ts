// `norikae-splice service`: the startup service's files, checked by systemd's own
// `systemd-analyze verify`, and what install/uninstall/status do where systemctl cannot run.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { loadConfig } from '../lib/config-file.js';
import { runServiceCommand, type ServiceCommandOptions } from '../lib/service-install.js';
import { CLI, runCli } from './helpers.js';
import { requireTool, SYSTEMD_ANALYZE } from './system-tools.js';

const TOML = 'listen = ["127.0.0.1:8080", "[::1]:8080"]\n[service.pg]\nlisten = 5433\nport = 5432\n[service.web]\nport = 3000\n';

function tempDir(t: TestContext, name = 'norikae-service-'): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The CLI with HOME and XDG_CONFIG_HOME in `home`, so nothing of the real user's is touched. */
function runHome(args: string[], home: string): ReturnType<typeof runCli> {
  return runCli(args, { env: { HOME: home, XDG_CONFIG_HOME: join(home, '.config') } });
}

/** systemd-analyze verify on the files; its status and everything it said. */
function verify(tool: string, files: string[], user: boolean, runtimeDir: string): { status: number | null; output: string } {
  const result = spawnSync(tool, ['verify', ...(user ? ['--user'] : []), ...files], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir } });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('norikae-splice service install', () => {
  test('--dry-run prints one socket unit per listener, named, and the service with absolute paths; writes nothing', async (t) => {
    const home = tempDir(t);
    writeFileSync(join(home, 'norikae.toml'), TOML);
    const run = await runHome(['service', 'install', '--dry-run', '--config', join(home, 'norikae.toml')], home);
    assert.equal(run.code, 0, run.stderr);
    const unitDir = join(home, '.config', 'systemd', 'user');
    for (const [name, listen, fdName] of [
      ['norikae-splice-http-8080.socket', '127.0.0.1:8080', 'http-8080'],
      ['norikae-splice-tcp-pg-5433.socket', '127.0.0.1:5433', 'tcp-pg-5433'],
    ]) {
      assert.match(run.stdout, new RegExp(`# ${join(unitDir, name!)}\\n[^]*?ListenStream=${listen!.replaceAll('.', '\\.')}\\nFileDescriptorName=${fdName}\\nService=norikae-splice\\.service\\n`));
    }
    // Both HTTP addresses share a port, so a name: told apart by their bound address.
    assert.match(run.stdout, /ListenStream=\[::1\]:8080\nFileDescriptorName=http-8080\nService=norikae-splice\.service\nBindIPv6Only=ipv6-only\n/);
    assert.equal((run.stdout.match(/^ListenStream=/gm) ?? []).length, 3);
    assert.ok(run.stdout.includes(`ExecStart=${process.execPath} ${CLI} --config ${join(home, 'norikae.toml')}\n`), run.stdout);
    assert.match(run.stdout, /systemctl --user enable --now norikae-splice-http-8080\.socket norikae-splice-http-8080\.socket norikae-splice-tcp-pg-5433\.socket/);
    assert.equal(existsSync(unitDir), false, 'a dry run writes nothing');
  });

  test('the units it writes pass systemd-analyze verify (user units, and system units with User=)', async (t) => {
    const tool = requireTool(t, SYSTEMD_ANALYZE);
    if (tool === undefined) return;
    // A path with a space and a %: ExecStart must quote and escape it for systemd.
    const home = tempDir(t, 'norikae service 100%-');
    const runtimeDir = tempDir(t);
    writeFileSync(join(home, 'norikae.toml'), TOML.replace('listen = ["127.0.0.1:8080", "[::1]:8080"]', 'listen = 8080'));
    for (const system of [false, true]) {
      const unitDir = join(home, system ? 'system' : 'user');
      const run = await runHome(['service', 'install', '--config', join(home, 'norikae.toml'), '--unit-dir', unitDir, ...(system ? ['--system'] : [])], home);
      assert.equal(run.code, 0, run.stderr);
      const files = readdirSync(unitDir).sort();
      assert.deepEqual(files, ['norikae-splice-http-8080.socket', 'norikae-splice-tcp-pg-5433.socket', 'norikae-splice.service']);
      const service = readFileSync(join(unitDir, 'norikae-splice.service'), 'utf8');
      assert.ok(service.includes(`ExecStart=${process.execPath} ${CLI} --config "${join(home, 'norikae.toml').replaceAll('%', '%%')}"\n`), service);
      assert.equal(service.includes(`User=${userInfo().username}\n`), system);
      const result = verify(tool, files.map((file) => join(unitDir, file)), !system, runtimeDir);
      assert.equal(result.status, 0, result.output);
      assert.equal(result.output, '', 'no warnings either');
    }
  });

  test('a second install after `listen` changed removes the socket units of the listeners that went', async (t) => {
    const home = tempDir(t);
    const unitDir = join(home, 'units');
    writeFileSync(join(home, 'norikae.toml'), TOML);
    assert.equal((await runHome(['service', 'install', '--config', join(home, 'norikae.toml'), '--unit-dir', unitDir], home)).code, 0);
    writeFileSync(join(home, 'norikae.toml'), 'listen = 9090\n[service.web]\nport = 3000\n');
    const run = await runHome(['service', 'install', '--config', join(home, 'norikae.toml'), '--unit-dir', unitDir], home);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(readdirSync(unitDir).sort(), ['norikae-splice-http-9090.socket', 'norikae-splice.service']);
  });

  test('port 0 cannot be a startup service\'s listener', async (t) => {
    const home = tempDir(t);
    writeFileSync(join(home, 'norikae.toml'), 'listen = "127.0.0.1:0"\n');
    const run = await runHome(['service', 'install', '--dry-run', '--config', join(home, 'norikae.toml')], home);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /127\.0\.0\.1:0: a startup service needs fixed ports, not 0/);
  });
});

describe('where systemd does not run', () => {
  function options(t: TestContext, action: ServiceCommandOptions['action'], lines: string[]): ServiceCommandOptions {
    const home = tempDir(t);
    writeFileSync(join(home, 'norikae.toml'), TOML);
    return {
      action, config: loadConfig(join(home, 'norikae.toml')), listenArgs: undefined, system: false, dryRun: false, unitDir: undefined,
      node: process.execPath, bin: CLI, print: (line) => lines.push(line), systemdRunning: false,
      env: { ...process.env, XDG_CONFIG_HOME: join(home, '.config') },
    };
  }

  test('install writes the units, says exactly what to run, and exits non-zero', (t) => {
    const lines: string[] = [];
    const install = options(t, 'install', lines);
    assert.equal(runServiceCommand(install), 1);
    const unitDir = join(install.env!.XDG_CONFIG_HOME!, 'systemd', 'user');
    assert.deepEqual(readdirSync(unitDir).sort(), ['norikae-splice-http-8080.socket', 'norikae-splice-tcp-pg-5433.socket', 'norikae-splice.service']);
    const text = lines.join('\n');
    assert.match(text, /systemd is not running here \(no \/run\/systemd\/system\), so the units were written but not enabled\. Where systemd runs, run:\n {2}systemctl --user daemon-reload\n {2}systemctl --user enable --now norikae-splice-http-8080\.socket norikae-splice-http-8080\.socket norikae-splice-tcp-pg-5433\.socket\n {2}systemctl --user try-restart norikae-splice\.service$/);

    lines.length = 0;
    assert.equal(runServiceCommand({ ...install, action: 'status' }), 1);
    assert.match(lines.join('\n'), /installed: .*norikae-splice\.service[^]*Where systemd runs, run:\n {2}systemctl --user status --no-pager norikae-splice\.service/);

    lines.length = 0;
    assert.equal(runServiceCommand({ ...install, action: 'uninstall' }), 1);
    assert.match(lines.join('\n'), /not disabled, nor removed\. Where systemd runs, run:\n {2}systemctl --user disable --now norikae-splice-http-8080\.socket norikae-splice-tcp-pg-5433\.socket norikae-splice\.service\n {2}rm /);
    assert.equal(readdirSync(unitDir).length, 3, 'left for systemctl to disable first');
  });

  test('uninstall and status with --unit-dir change and read only that folder', async (t) => {
    const home = tempDir(t);
    const unitDir = join(home, 'units');
    writeFileSync(join(home, 'norikae.toml'), TOML);
    const config = join(home, 'norikae.toml');
    assert.equal((await runHome(['service', 'status', '--config', config, '--unit-dir', unitDir], home)).code, 1);
    assert.equal((await runHome(['service', 'install', '--config', config, '--unit-dir', unitDir], home)).code, 0);
    const status = await runHome(['service', 'status', '--config', config, '--unit-dir', unitDir], home);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /installed: .*norikae-splice\.service/);
    const uninstall = await runHome(['service', 'uninstall', '--config', config, '--unit-dir', unitDir], home);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.deepEqual(readdirSync(unitDir), []);
  });
});

describe('launchd (macOS)', () => {
  test('the agent runs node and the bin on the config, at login, logging to a file', (t) => {
    const home = tempDir(t);
    writeFileSync(join(home, 'norikae.toml'), TOML);
    const lines: string[] = [];
    const code = runServiceCommand({
      action: 'install', config: loadConfig(join(home, 'norikae.toml')), listenArgs: undefined, system: false, dryRun: true, unitDir: join(home, 'agents'),
      node: process.execPath, bin: CLI, print: (line) => lines.push(line), platform: 'darwin',
    });
    assert.equal(code, 0);
    const text = lines.join('\n');
    assert.ok(text.includes(`<array>\n    <string>${process.execPath}</string>\n    <string>${CLI}</string>\n    <string>--config</string>\n    <string>${join(home, 'norikae.toml')}</string>\n  </array>`), text);
    assert.match(text, /<key>RunAtLoad<\/key><true\/>/);
    assert.match(text, /<key>StandardErrorPath<\/key><string>.*Library\/Logs\/norikae-splice\.log<\/string>/);
    assert.match(text, /launchctl bootstrap gui\/\d+ .*agents\/org\.norikae-splice\.plist/);
    assert.equal(existsSync(join(home, 'agents')), false);
  });
});
