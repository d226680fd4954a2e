// `norikae-splice init`: the starter config, where it goes, and that it never overwrites a file.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { configWarnings } from '../lib/config-warnings.js';
import { starterConfig, starterConfigFile } from '../lib/starter-config.js';
import { runCli } from './helpers.js';

function folder(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const run = (args: string[], cwd: string, env: NodeJS.ProcessEnv) => runCli(args, { cwd, env });

describe('the starter config', () => {
  test('is a valid config with no warnings, listening where it was asked to', () => {
    const config = parseConfig(starterConfig(), '/home/me/.config/norikae/config.toml');
    assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 80 }]);
    assert.deepEqual(config.services, []);
    assert.deepEqual(configWarnings(config), []);
    assert.deepEqual(parseConfig(starterConfig({ host: '127.0.0.1', port: 8080 }), '/c.toml').listen, [{ host: '127.0.0.1', port: 8080 }]);
    assert.match(starterConfig({ host: '127.0.0.1', port: 8080 }), /http:\/\/NAME\.localhost:8080/);
  });

  test('its commented-out service block is a valid service once uncommented', () => {
    const uncommented = starterConfig().replace(/^# (\[service\.shop\]|host = |cwd = |command = )/gm, '$1');
    const shop = parseConfig(uncommented, '/c.toml').services[0];
    assert.deepEqual([shop?.name, shop?.hosts, shop?.command], ['shop', ['shop.localhost'], 'npm run dev -- --port {port} --strictPort']);
  });

  test('goes to $XDG_CONFIG_HOME/norikae/config.toml, or ./norikae.toml with --here', () => {
    assert.equal(starterConfigFile({ env: { XDG_CONFIG_HOME: '/x/conf' } }), '/x/conf/norikae/config.toml');
    assert.equal(starterConfigFile({ here: true, cwd: '/p' }), '/p/norikae.toml');
  });
});

describe('norikae-splice init', () => {
  test('writes the starter config where the other commands find it, which `check` passes', async (t) => {
    const dir = folder(t);
    const env = { XDG_CONFIG_HOME: join(dir, 'conf'), HOME: dir };
    const init = await run(['init'], dir, env);
    assert.equal(init.code, 0, init.stderr);
    const file = join(dir, 'conf', 'norikae', 'config.toml');
    assert.equal(init.stdout, `wrote ${file}\nnext: norikae-splice add DIR (for each project), then norikae-splice doctor\n`);
    assert.equal(readFileSync(file, 'utf8'), starterConfig());
    const check = await run(['check'], dir, env);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`^config ${file}\\n`));
    assert.match(check.stdout, /config is valid\n$/);
    assert.equal(check.stderr, '');
  });

  test('never overwrites: it says where the existing file is, and leaves it as it was', async (t) => {
    const dir = folder(t);
    const env = { XDG_CONFIG_HOME: join(dir, 'conf'), HOME: dir };
    mkdirSync(join(dir, 'conf', 'norikae'), { recursive: true });
    writeFileSync(join(dir, 'conf', 'norikae', 'config.toml'), 'listen = 9\n');
    const again = await run(['init'], dir, env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`a config already exists at ${join(dir, 'conf', 'norikae', 'config.toml')}; it was left as it is`));
    assert.equal(readFileSync(join(dir, 'conf', 'norikae', 'config.toml'), 'utf8'), 'listen = 9\n');

    const here = await run(['init', '--here', '--listen', '8080'], dir, env);
    assert.equal(here.code, 0, here.stderr);
    assert.match(readFileSync(join(dir, 'norikae.toml'), 'utf8'), /^listen = "127\.0\.0\.1:8080"$/m);
    const hereAgain = await run(['init', '--here'], dir, env);
    assert.match(hereAgain.stderr, new RegExp(`a config already exists at ${join(dir, 'norikae.toml')}`));
  });

  test('says so when a ./norikae.toml here would be read instead of the file it writes', async (t) => {
    const dir = folder(t);
    writeFileSync(join(dir, 'norikae.toml'), 'listen = 8080\n');
    const init = await run(['init'], dir, { XDG_CONFIG_HOME: join(dir, 'conf'), HOME: dir });
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stderr, /norikae\.toml is read first in this folder/);
  });
});
