// `norikae-splice add`: the block appended as text (the user's file otherwise untouched), names,
// git worktrees, refusals, and a running norikae picking the new service up by its file watch.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { addService, gitWorktree, sanitiseName } from '../lib/add-service.js';
import { loadConfig } from '../lib/config-file.js';
import { ConfigError, ErrorCode, NorikaeError } from '../lib/errors.js';
import { CLI, delay, DEV_SERVER, exchange, freePort, getHead, parseResponse } from './helpers.js';

/** A temporary folder holding `files` (path → text), removed after the test. */
function folder(t: TestContext, files: Record<string, string> = {}, prefix = 'norikae-add-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const VITE_PROJECT = { 'package.json': JSON.stringify({ scripts: { dev: 'vite' }, devDependencies: { vite: '5' } }) };

/** A user's config: comments, blank lines, odd spacing, and no newline at the end. */
const USER_CONFIG = '# my services\nlisten   =  8080   # the port\n\n[service.api]   # the backend\nport = 3001\n# command = "old"';

describe('addService', () => {
  test('appends a block as text: the file before it is byte for byte what it was, and the result is a valid config', (t) => {
    const dir = folder(t, { 'norikae.toml': USER_CONFIG, 'shop/package.json': VITE_PROJECT['package.json'], 'shop/package-lock.json': '{}' });
    const file = join(dir, 'norikae.toml');
    const result = addService({ configFile: file, dir: join(dir, 'shop') });
    const text = readFileSync(file, 'utf8');
    assert.ok(text.startsWith(`${USER_CONFIG}\n\n`), text);
    assert.equal(text.slice(USER_CONFIG.length + 2), result.block);
    assert.match(result.block, /^# Vite: the dev script of package\.json, run with npm \(norikae-splice add\)\n\[service\.shop\]\nhost = "shop\.localhost"\ncwd = ".*shop"\ncommand = "npm run dev -- --port \{port\} --strictPort"\n$/);
    assert.equal(result.url, 'http://shop.localhost:8080/');
    const shop = loadConfig(file).services.find((service) => service.name === 'shop');
    assert.deepEqual([shop?.hosts, shop?.cwd, shop?.command], [['shop.localhost'], join(dir, 'shop'), 'npm run dev -- --port {port} --strictPort']);
  });

  test('--dry-run writes nothing; the block is the same', (t) => {
    const dir = folder(t, { 'norikae.toml': USER_CONFIG, 'shop/package.json': VITE_PROJECT['package.json'] });
    const file = join(dir, 'norikae.toml');
    const result = addService({ configFile: file, dir: join(dir, 'shop'), dryRun: true });
    assert.equal(result.written, false);
    assert.equal(readFileSync(file, 'utf8'), USER_CONFIG);
    assert.match(result.block, /\[service\.shop\]/);
  });

  test('the name is the folder\'s, sanitised for a host; --name gives another', (t) => {
    assert.equal(sanitiseName('My App_2 (copy)'), 'my-app-2-copy');
    assert.equal(sanitiseName('--Über--'), 'ber');
    const dir = folder(t, { 'norikae.toml': '', 'My Shop_v2/package.json': VITE_PROJECT['package.json'] });
    assert.equal(addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'My Shop_v2'), dryRun: true }).name, 'my-shop-v2');
    const named = addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'My Shop_v2'), name: 'store' });
    assert.deepEqual([named.name, named.host], ['store', 'store.localhost']);
    assert.throws(() => addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'My Shop_v2'), name: 'no_underscores' }),
      (err: NorikaeError) => err.code === ErrorCode.SERVICE_NAME && /"no_underscores" cannot be a service name/.test(err.message));
  });

  test('a name the config has already is refused, with its line and a free name to use; the file is untouched', (t) => {
    const config = '[service.shop]\nport = 3000\n\n[service.shop-2]\nport = 3001\n';
    const dir = folder(t, { 'norikae.toml': config, 'Shop/package.json': VITE_PROJECT['package.json'] });
    assert.throws(() => addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'Shop') }), (err: NorikaeError) => {
      assert.equal(err.code, ErrorCode.SERVICE_EXISTS);
      assert.equal(err.message, `there is already a service named shop (${join(dir, 'norikae.toml')}:1); choose another name, for example: --name shop-3`);
      return true;
    });
    assert.equal(readFileSync(join(dir, 'norikae.toml'), 'utf8'), config);
  });

  test('a block that would make the config invalid (its host claimed by another service) is not written', (t) => {
    const config = '[service.other]\nhost = "shop.localhost"\nport = 3000\n';
    const dir = folder(t, { 'norikae.toml': config, 'shop/package.json': VITE_PROJECT['package.json'] });
    assert.throws(() => addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'shop') }),
      (err: NorikaeError) => err instanceof ConfigError && /would not be valid with this block, so it was not added: .*shop\.localhost/.test(err.message));
    assert.equal(readFileSync(join(dir, 'norikae.toml'), 'utf8'), config);
  });

  test('a config that is invalid already is not added to', (t) => {
    const config = '[service.web]\ncomand = "x"\n';
    const dir = folder(t, { 'norikae.toml': config, 'shop/package.json': VITE_PROJECT['package.json'] });
    assert.throws(() => addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'shop') }), /unknown key "comand"/);
    assert.equal(readFileSync(join(dir, 'norikae.toml'), 'utf8'), config);
  });

  test('a folder with no dev server found is refused, saying what was looked for; --command gives one', (t) => {
    const dir = folder(t, { 'norikae.toml': '', 'docs/README.md': '# hi\n' });
    assert.throws(() => addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'docs') }),
      (err: NorikaeError) => err.code === ErrorCode.NO_PROJECT && /looked for bin\/rails, manage\.py.*--command/.test(err.message));
    const result = addService({ configFile: join(dir, 'norikae.toml'), dir: join(dir, 'docs'), command: 'python3 -m http.server {port} --bind 127.0.0.1' });
    assert.match(result.block, /^# the command given \(norikae-splice add\)\n\[service\.docs\]\n/);
    assert.equal(loadConfig(join(dir, 'norikae.toml')).services[0]?.command, 'python3 -m http.server {port} --bind 127.0.0.1');
  });

  test('a symlinked config: the file it points to is replaced, the link stays, and so does the mode', (t) => {
    const dir = folder(t, { 'real.toml': USER_CONFIG, 'shop/package.json': VITE_PROJECT['package.json'] });
    chmodSync(join(dir, 'real.toml'), 0o640);
    symlinkSync(join(dir, 'real.toml'), join(dir, 'link.toml'));
    addService({ configFile: join(dir, 'link.toml'), dir: join(dir, 'shop') });
    assert.ok(lstatSync(join(dir, 'link.toml')).isSymbolicLink());
    assert.match(readFileSync(join(dir, 'real.toml'), 'utf8'), /\[service\.shop\]/);
    assert.equal(statSync(join(dir, 'real.toml')).mode & 0o777, 0o640);
  });

  test('a folder in the home folder is written with ~', (t) => {
    const home = folder(t, { 'Projects/shop/package.json': VITE_PROJECT['package.json'], 'norikae.toml': '' });
    const saved = process.env.HOME;
    process.env.HOME = home;
    t.after(() => (saved === undefined ? delete process.env.HOME : (process.env.HOME = saved)));
    assert.match(addService({ configFile: join(home, 'norikae.toml'), dir: join(home, 'Projects/shop') }).block, /^cwd = "~\/Projects\/shop"$/m);
    assert.equal(loadConfig(join(home, 'norikae.toml')).services[0]?.cwd, join(home, 'Projects/shop'));
  });
});

describe('git worktrees', () => {
  /** A main checkout `shop` and a worktree of it, laid out as `git worktree add` makes them. */
  function worktree(t: TestContext, head: string): { root: string; tree: string } {
    const root = folder(t, {
      'norikae.toml': '[service.shop]\nhost = "shop.localhost"\ncwd = "shop"\ncommand = "npm run dev"\n',
      'shop/.git/HEAD': 'ref: refs/heads/main\n',
      'shop/.git/worktrees/shop-login/HEAD': head,
      'shop/.git/worktrees/shop-login/commondir': '../..\n',
      'shop-login/package.json': VITE_PROJECT['package.json'],
    });
    writeFileSync(join(root, 'shop-login/.git'), `gitdir: ${join(root, 'shop/.git/worktrees/shop-login')}\n`);
    return { root, tree: join(root, 'shop-login') };
  }

  test('the host is BRANCH.NAME.localhost, NAME the main checkout\'s, beside the main checkout\'s service', (t) => {
    const { root, tree } = worktree(t, 'ref: refs/heads/feature/Login\n');
    assert.deepEqual(gitWorktree(tree), { branch: 'feature-login', mainCheckout: join(root, 'shop') });
    const result = addService({ configFile: join(root, 'norikae.toml'), dir: tree });
    assert.deepEqual([result.name, result.host, result.branch], ['feature-login.shop', 'feature-login.shop.localhost', 'feature-login']);
    assert.match(result.block, /^\[service\."feature-login\.shop"\]\nhost = "feature-login\.shop\.localhost"$/m);
    const config = loadConfig(join(root, 'norikae.toml'));
    assert.deepEqual(config.services.map((service) => [service.name, service.hosts]), [['shop', ['shop.localhost']], ['feature-login.shop', ['feature-login.shop.localhost']]]);
  });

  test('a detached HEAD is named by the worktree\'s folder; a relative gitdir is read from the worktree', (t) => {
    const { root, tree } = worktree(t, '3f1c0ffee3f1c0ffee3f1c0ffee3f1c0ffee3f1c\n');
    writeFileSync(join(tree, '.git'), 'gitdir: ../shop/.git/worktrees/shop-login\n');
    assert.deepEqual(gitWorktree(tree), { branch: 'shop-login', mainCheckout: join(root, 'shop') });
  });

  test('a submodule\'s .git file (no commondir) and a plain checkout are not worktrees', (t) => {
    const root = folder(t, { 'app/.git/modules/lib/HEAD': 'ref: refs/heads/main\n', 'app/lib/x': '', 'plain/.git/HEAD': 'ref: refs/heads/main\n' });
    writeFileSync(join(root, 'app/lib/.git'), 'gitdir: ../.git/modules/lib\n');
    assert.equal(gitWorktree(join(root, 'app/lib')), undefined);
    assert.equal(gitWorktree(join(root, 'plain')), undefined);
  });
});

describe('norikae-splice add (the CLI)', () => {
  test('a running norikae picks the added service up by its file watch, and serves it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-add-running-'));
    const port = await freePort();
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, `# mine\nlisten = ${port}\nlog_dir = "logs"\n`);
    // The project's Procfile runs a dev server that listens on $PORT.
    mkdirSync(join(dir, 'web'));
    writeFileSync(join(dir, 'web', 'Procfile'), `web: node ${DEV_SERVER}\n`);
    const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), DEBUG: '' };
    const norikae = spawn(process.execPath, [CLI, '--config', file], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    // Its stop is registered before the folder's removal (after-hooks run in order): norikae writes into it.
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
    assert.equal(parseResponse(await exchange(t, port, [getHead('web.localhost')])).status, 404);

    const add = spawn(process.execPath, [CLI, 'add', '--config', file], { cwd: join(dir, 'web'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let addErr = '';
    add.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    add.stderr.setEncoding('utf8').on('data', (chunk: string) => (addErr += chunk));
    const [code] = (await once(add, 'exit')) as [number | null];
    assert.equal(code, 0, addErr);
    assert.match(stdout, new RegExp(`^\\[service\\.web\\]\\nhost = "web\\.localhost"\\ncwd = ".*web"\\ncommand = "node .*dev-server\\.js"\\n`, 'm'));
    assert.match(stdout, new RegExp(`added to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: http://web\\.localhost:${port}/`));

    // Bounded: the watch reloads within a second; the launch takes a moment more.
    let status = 0;
    for (const deadline = performance.now() + 15_000; performance.now() < deadline; await delay(100)) {
      status = parseResponse(await exchange(t, port, [getHead('web.localhost')])).status;
      if (status === 200) break;
    }
    assert.equal(status, 200, stderr);
    assert.match(readFileSync(file, 'utf8'), /^# mine\nlisten = \d+\nlog_dir = "logs"\n\n# Procfile: /);
  });
});
