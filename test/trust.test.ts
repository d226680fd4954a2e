// The `ca`, `trust` and `untrust` commands, run as a user would, with HOME and XDG_DATA_HOME in a
// temporary folder: the root goes into (and out of) the NSS databases of Chromium and of a Firefox
// profile with `--no-system`; and into (and out of) the Debian/Ubuntu system store for real, inside
// a private mount namespace where that store is a throwaway copy (test/store-namespace.ts), so this
// machine's own store is never changed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { mintLeaf } from '../lib/certificates.js';
import { dataDir, loadCa } from '../lib/local-ca.js';
import { NSS_NICKNAME } from '../lib/trust-store.js';
import { chooseTool } from './chromium.js';
import { CLI, cliForOtherUsers, runCli } from './helpers.js';
import { namespaceRefusal, STORE_FOLDERS, storeNamespace } from './store-namespace.js';
import { requireTool } from './system-tools.js';

const CERTUTIL = chooseTool(process.env, 'certutil', 'apt-get install libnss3-tools');

function sandbox(t: TestContext): { home: string; env: NodeJS.ProcessEnv; run: (...args: string[]) => { status: number | null; stdout: string; stderr: string } } {
  const home = mkdtempSync(join(tmpdir(), 'norikae-trust-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  const run = (...args: string[]) => {
    const result = spawnSync(process.execPath, [CLI, ...args], { cwd: home, env, encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  return { home, env, run };
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

describe('trust commands for a user without sudo', () => {
  test('trust and untrust say to run as root or with --no-system, run nothing, and say nothing was done', async (t) => {
    const { home, env } = sandbox(t);
    // As root the steps would run: the CLI then runs as nobody, in a home of its own.
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    if (uid !== undefined) chownSync(home, uid, uid);
    const cli = uid === undefined ? undefined : cliForOtherUsers(t);
    // No sudo on this PATH (update-ca-certificates is still found in /usr/sbin, as sudo's PATH has it).
    const run = (...args: string[]) => runCli(args, { cwd: home, env: { ...env, PATH: '/nonexistent' }, uid, cli });
    for (const command of ['trust', 'untrust']) {
      const result = await run(command);
      assert.equal(result.code, 1, result.stderr + result.stdout);
      assert.match(result.stdout, /the system store needs root, and sudo is not installed: run this again as root, or with --no-system to leave the system store alone\n/);
      assert.doesNotMatch(result.stdout, /failed|sudo install|sudo rm/);
      assert.doesNotMatch(result.stdout, /Restart the browsers/, 'nothing was installed for them to see');
    }
  });
});

describe('trust commands and the Debian/Ubuntu system store', () => {
  const OPENSSL = chooseTool(process.env, 'openssl', 'apt-get install openssl');
  const STORE_FILE = '/usr/local/share/ca-certificates/norikae-splice.crt';
  const BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
  const SETPRIV = '/usr/bin/setpriv';

  test('trust copies the root in and rebuilds the store, then OpenSSL accepts a leaf; untrust takes it out',
    { timeout: 300_000 }, async (t) => {
      // A missing tool fails under CI (.ci/run installs them); only root and unshare may skip.
      if (OPENSSL.fail) assert.fail(OPENSSL.fail);
      if (OPENSSL.skip) return t.skip(OPENSSL.skip);
      for (const tool of [
        { path: '/usr/sbin/update-ca-certificates', install: 'apt-get install ca-certificates' },
        { path: '/usr/bin/unshare', install: 'apt-get install util-linux' },
        { path: '/usr/bin/nsenter', install: 'apt-get install util-linux' },
        { path: SETPRIV, install: 'apt-get install util-linux' },
      ]) {
        if (requireTool(t, tool) === undefined) return;
      }
      const refusal = namespaceRefusal();
      if (refusal !== undefined) return t.skip(refusal);
      const before = realStore();
      const { home, env } = sandbox(t);
      mkdirSync(join(home, 'config', 'norikae'), { recursive: true });
      // With `https` configured, doctor fails the check when the root is not trusted.
      writeFileSync(join(home, 'config', 'norikae', 'config.toml'), 'https = 8443\n[service.shop]\nhost = "shop.test"\nport = 3000\n');
      const ns = await storeNamespace(t);
      // Under umask 077, as under sudo for a user whose umask is 077: the store's file must still
      // be readable by every user, as programs read it through the hashed links.
      const cli = (...args: string[]) => {
        const result = ns.run(['sh', '-c', 'umask 077 && exec "$0" "$@"', process.execPath, CLI, ...args], { cwd: home, env, timeout: 120_000 });
        return { status: result.status, output: `${result.stdout}${result.stderr}${result.error ? String(result.error) : ''}` };
      };
      // OpenSSL as a user without privileges, through the bundle and through the hashed links.
      const verify = (leaf: string): boolean[] => [['-CAfile', BUNDLE, '-no-CApath'], ['-CApath', '/etc/ssl/certs', '-no-CAfile']].map((from) =>
        ns.run([SETPRIV, '--reuid=65534', '--regid=65534', '--clear-groups', 'openssl', 'verify', ...from, '-purpose', 'sslserver'], { cwd: '/', input: leaf }).status === 0);
      const doctorHttps = (): { ok: boolean; message: string; fix?: string } => {
        const result = ns.run([process.execPath, CLI, 'doctor', '--json'], { cwd: home, env });
        const check = (JSON.parse(result.stdout) as { checks: { name: string; ok: boolean; message: string; fix?: string }[] }).checks.find((entry) => entry.name === 'https');
        assert.ok(check, result.stdout + result.stderr);
        return check;
      };
      const rootNow = async (): Promise<{ pem: string; leaf: string }> => {
        const ca = await loadCa(dataDir(env));
        assert.ok(ca);
        return { pem: ca.rootPem, leaf: (await mintLeaf(ca, 'shop.test')).certPem };
      };

      const trusted = cli('trust');
      assert.equal(trusted.status, 0, trusted.output);
      assert.match(trusted.output, new RegExp(`copy the root into the system store \\(Debian/Ubuntu\\):\\n  install -m 644 \\S+/root-ca\\.pem ${STORE_FILE}\\n`));
      assert.match(trusted.output, /rebuild the system store:\n  update-ca-certificates\n/);
      const first = await rootNow();
      assert.equal(ns.read(STORE_FILE), first.pem);
      assert.ok(holds(ns.read(BUNDLE), first.pem), `${BUNDLE} holds the root`);
      assert.deepEqual(verify(first.leaf), [true, true], 'OpenSSL accepts the leaf through the bundle and through the hashed links');
      assert.equal(spawnSync('openssl', ['verify', '-CAfile', BUNDLE], { input: first.leaf }).status, 2, 'this machine\'s own store does not');
      const doctor = doctorHttps();
      assert.equal(doctor.ok, true, doctor.message);
      assert.match(doctor.message, new RegExp(`trusted in the system store \\(${BUNDLE}\\)`));

      const removed = cli('untrust');
      assert.equal(removed.status, 0, removed.output);
      assert.match(removed.output, new RegExp(`remove the root from the system store \\(Debian/Ubuntu\\):\\n  rm -f ${STORE_FILE}\\n`));
      assert.match(removed.output, /rebuild the system store:\n  update-ca-certificates --fresh\n/);
      assert.equal(ns.read(STORE_FILE), undefined);
      assert.ok(!holds(ns.read(BUNDLE), first.pem), `${BUNDLE} no longer holds the root`);
      assert.deepEqual(verify(first.leaf), [false, false], 'OpenSSL refuses the leaf again');
      const after = doctorHttps();
      assert.equal(after.ok, false);
      assert.match(after.message, /trusted nowhere/);

      // Copied in, but the store not rebuilt (update-ca-certificates never ran): not trusted yet.
      const copied = ns.run(['cp', join(dataDir(env), 'root-ca.pem'), STORE_FILE], { cwd: home });
      assert.equal(copied.status, 0, copied.stderr);
      const notRebuilt = doctorHttps();
      assert.equal(notRebuilt.ok, false);
      assert.equal(notRebuilt.message, `the root is in ${STORE_FILE}, but not in ${BUNDLE}: the system store was not rebuilt since`);
      assert.equal(notRebuilt.fix, 'sudo update-ca-certificates');

      assert.deepEqual(realStore(), before, 'this machine\'s own store is unchanged');
    });
});

/** Whether the PEM bundle `bundle` holds the certificate `pem`. */
function holds(bundle: string | undefined, pem: string): boolean {
  return bundle !== undefined && bundle.replace(/\s+/g, '').includes(pem.replace(/\s+/g, ''));
}

/** This machine's store folders as seen from outside the namespace: each entry, its link target or its content's hash. */
function realStore(): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const folder of STORE_FOLDERS) {
    if (!existsSync(folder)) continue;
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isSymbolicLink()) entries[path] = `-> ${readlinkSync(path)}`;
      else if (entry.isFile()) entries[path] = createHash('sha256').update(readFileSync(path)).digest('hex');
      else entries[path] = 'folder';
    }
  }
  return entries;
}
