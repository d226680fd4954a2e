// The package as a user gets it: `npm pack` of the built tree, installed into a fresh project.
// It must import as 'norikae-splice' (with its types), and its installed command must run. The
// build is done already (`npm test` builds first), so packing runs no scripts.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

describe('the packed package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-package-'));
  const project = join(dir, 'project');
  let packed: string[] = [];

  before(async () => {
    const [pack] = JSON.parse(await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], ROOT, 60_000)) as
      { filename: string; files: { path: string }[] }[];
    packed = pack!.files.map((file) => file.path);
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{ "name": "consumer", "private": true, "type": "module" }\n');
    // Dependencies come from npm's cache when it has them, else from the registry.
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, pack!.filename)], project, 120_000);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('ships the entry point, its types and the command, and none of the tests or benchmarks', () => {
    for (const file of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/bin/norikae-splice.js', 'examples/norikae.toml', 'README.md']) {
      assert.ok(packed.includes(file), `${file} is in the tarball`);
    }
    assert.deepEqual(packed.filter((file) => /^dist\/(test|bench)\//.test(file)), []);
  });

  test('imports as norikae-splice and parses a config', async () => {
    const script = `
      import { parseConfig, ConfigError } from 'norikae-splice';
      const config = parseConfig('[service.web]\\nhost = "web.localhost"\\nport = 3000\\n', '/project/norikae.toml');
      let error;
      try { parseConfig('[service.web]\\nprot = 3000\\n', '/project/norikae.toml'); } catch (err) { error = err; }
      console.log(JSON.stringify({
        services: config.services.map((s) => [s.name, s.hosts, s.port]),
        error: error instanceof ConfigError && [error.code, error.line],
      }));`;
    const result = JSON.parse(await run(process.execPath, ['--input-type=module', '-e', script], project)) as unknown;
    assert.deepEqual(result, { services: [['web', ['web.localhost'], 3000]], error: ['NORIKAE_ERR_CONFIG', 2] });
  });

  test('startApp runs norikae-splice from code: a request is spliced to a service, then close()', async () => {
    const upstream = createServer((_req, res) => res.end('from the upstream'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    writeFileSync(join(project, 'app.toml'), `listen = "127.0.0.1:0"\n[service.web]\nport = ${upstreamPort}\n`);
    const script = `
      import { request } from 'node:http';
      import { startApp } from 'norikae-splice';
      const app = await startApp({ config: 'app.toml', log: { info() {}, warn() {}, error() {} }, watch: false });
      const { port } = app.addresses()[0];
      const body = await new Promise((resolve, reject) => {
        request({ host: '127.0.0.1', port, headers: { host: 'web.localhost' } }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
        }).on('error', reject).end();
      });
      await app.close();
      console.log(JSON.stringify({ body, services: app.config.services.map((s) => s.name) }));`;
    try {
      // The launch record goes to a state folder of the test's own.
      const result = JSON.parse(await run(process.execPath, ['--input-type=module', '-e', script], project, 30_000, { XDG_STATE_HOME: join(dir, 'state') })) as unknown;
      assert.deepEqual(result, { body: 'from the upstream', services: ['web'] });
    } finally {
      upstream.close();
    }
  });

  test('its types are found by TypeScript, and are real types', async () => {
    writeFileSync(join(project, 'consumer.ts'), [
      "import { parseConfig, startApp, type App, type Config, type ServiceConfig } from 'norikae-splice';",
      "const config: Config = parseConfig('[service.web]\\nport = 3000\\n', '/project/norikae.toml');",
      "export const starting: Promise<App> = startApp({ config: 'norikae.toml', watch: false });",
      'const service: ServiceConfig = config.services[0]!;',
      'export const hosts: string[] = service.hosts;',
      '// @ts-expect-error -- unused (an error of its own) if the import were `any`',
      'export const wrong: number = config.file;',
      '',
    ].join('\n'));
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['consumer.ts'],
    }));
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], project);
  });

  test('its installed command runs: --version and check', async () => {
    const bin = join(project, 'node_modules', '.bin', 'norikae-splice');
    assert.match(await run(bin, ['--version'], project), new RegExp(`^norikae-splice/${version.replaceAll('.', '\\.')} `));
    writeFileSync(join(project, 'norikae.toml'), 'listen = 8080\n[service.web]\nhost = "web.localhost"\nport = 3000\ncommand = "npm run dev"\n');
    const output = await run(bin, ['check', '--config', 'norikae.toml'], project);
    assert.match(output, /web {2}http:\/\/web\.localhost:8080 → 127\.0\.0\.1:3000/);
    assert.match(output, /config is valid/);
  });

  test('the README\'s "Use it" commands are the installed command\'s (npx finds no unpublished package)', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = /^## Use it\n([\s\S]*?)^## /m.exec(readme)![1]!;
    const commands = [...section.matchAll(/^```sh\n([\s\S]*?)^```/gm)]
      .flatMap((block) => block[1]!.split('\n'))
      .map((line) => line.replace(/#.*/, '').trim())
      .filter((line) => line !== '');
    assert.ok(commands.includes('npm install -g .'), 'it says how to install the command');
    const help = await run(join(project, 'node_modules', '.bin', 'norikae-splice'), ['--help'], project);
    for (const command of commands.filter((line) => !line.startsWith('npm '))) {
      assert.match(command, /^norikae-splice( |$)/);
      const [, subcommand = '-'] = command.split(/ +/);
      if (!subcommand.startsWith('-')) assert.match(help, new RegExp(`^ {2}${subcommand} `, 'm'), `${command}: the command knows ${subcommand}`);
    }
  });
});

/**
 * Runs a command to its end within `timeoutMs` (then SIGKILL) and returns its stdout; a non-zero
 * exit rejects with its output. npm's own variables from `npm test` are left out: the child npm
 * would take `npm_config_local_prefix` and install into this checkout instead of `cwd`.
 */
function run(command: string, args: string[], cwd: string, timeoutMs = 30_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_(?!config_)|^npm_config_local_prefix$/.test(key)));
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: { ...env, npm_config_update_notifier: 'false', ...extraEnv }, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed (${err.killed ? `killed after ${timeoutMs} ms` : `exit ${String(err.code)}`}):\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}
