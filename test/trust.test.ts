// The `ca`, `trust` and `untrust` commands, run as a user would, with HOME and XDG_DATA_HOME in a
// temporary folder: the root goes into (and out of) the NSS databases of Chromium and of a Firefox
// profile. `--no-system` keeps the tests away from this machine's system store.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { NSS_NICKNAME } from '../lib/trust-store.js';
import { chooseTool } from './chromium.js';
import { CLI } from './helpers.js';

const CERTUTIL = chooseTool(process.env, 'certutil', 'apt-get install libnss3-tools');

function sandbox(t: TestContext): { home: string; run: (...args: string[]) => { status: number | null; stdout: string; stderr: string } } {
  const home = mkdtempSync(join(tmpdir(), 'norikae-trust-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  const run = (...args: string[]) => {
    const result = spawnSync(process.execPath, [CLI, ...args], { cwd: home, env, encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  return { home, run };
}

/** The root's PEM as the NSS database in `dir` holds it, or undefined when it has none. */
function nssRoot(dir: string): string | undefined {
  const result = spawnSync('certutil', ['-L', '-d', `sql:${dir}`, '-n', NSS_NICKNAME, '-a'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.replace(/\r\n/g, '\n').trim() : undefined;
}

describe('trust commands', () => {
  test('ca prints the root, making the CA once, for the configured names', (t) => {
    const { home, run } = sandbox(t);
    mkdirSync(join(home, 'config', 'norikae'), { recursive: true });
    writeFileSync(join(home, 'config', 'norikae', 'config.toml'), '[service.shop]\nhost = "shop.test"\nport = 3000\n');
    const first = run('ca');
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    assert.equal(run('ca').stdout, first.stdout, 'the same CA the second time');
    assert.equal(readFileSync(join(home, 'data', 'norikae', 'root-ca.pem'), 'utf8'), first.stdout);
    const text = execFileSync('openssl', ['x509', '-noout', '-ext', 'nameConstraints'], { input: first.stdout, encoding: 'utf8' });
    assert.match(text, /DNS:localhost/);
    assert.match(text, /DNS:test/);
  });

  test('trust puts the root in Chromium\'s and Firefox\'s NSS databases, untrust takes it out, --renew replaces it',
    { skip: CERTUTIL.skip }, (t) => {
      if (CERTUTIL.fail) assert.fail(CERTUTIL.fail);
      const { home, run } = sandbox(t);
      const firefox = join(home, '.mozilla', 'firefox', 'abcd.default-release');
      mkdirSync(firefox, { recursive: true });
      execFileSync('certutil', ['-N', '-d', `sql:${firefox}`, '--empty-password']);
      const chromium = join(home, '.pki', 'nssdb');

      const trusted = run('trust', '--no-system');
      assert.equal(trusted.status, 0, trusted.stderr + trusted.stdout);
      assert.match(trusted.stdout, /trust the root in Chrome\/Chromium \(~\/\.pki\/nssdb\):\n  certutil -A /);
      assert.match(trusted.stdout, /trust the root in Firefox profile abcd\.default-release/);
      assert.match(trusted.stdout, /export NODE_EXTRA_CA_CERTS=.*root-ca\.pem/);
      const root = readFileSync(join(home, 'data', 'norikae', 'root-ca.pem'), 'utf8').trim();
      assert.equal(nssRoot(chromium), root);
      assert.equal(nssRoot(firefox), root);

      const renewed = run('trust', '--renew', '--no-system');
      assert.equal(renewed.status, 0, renewed.stderr + renewed.stdout);
      const newRoot = readFileSync(join(home, 'data', 'norikae', 'root-ca.pem'), 'utf8').trim();
      assert.notEqual(newRoot, root);
      assert.equal(nssRoot(chromium), newRoot, 'only the new root is left');
      assert.equal(nssRoot(firefox), newRoot);

      const removed = run('untrust', '--no-system');
      assert.equal(removed.status, 0, removed.stderr + removed.stdout);
      assert.equal(nssRoot(chromium), undefined);
      assert.equal(nssRoot(firefox), undefined);
    });
});
