// The local CA and its leaves: file modes, Name Constraints that OpenSSL enforces, one mint per
// name however many wait, renewal before expiry, the disk cache, and names the CA may not sign.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { Certificates, mintLeaf } from '../lib/certificates.js';
import { CaError, ErrorCode } from '../lib/errors.js';
import { createCa, KEY_FILE, loadCa, rootFile, serialNumber, subtreesFor } from '../lib/local-ca.js';
import { loadX509 } from '../lib/x509.js';

const OPENSSL = spawnSync('openssl', ['version']).status === 0;
const needOpenssl = OPENSSL ? false : 'no openssl; install it with `apt-get install openssl`';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'norikae');
}

/** `openssl verify` of a leaf against the root: its exit status and what it printed. */
function opensslVerify(dir: string, leafPem: string): { ok: boolean; output: string } {
  const leafFile = join(dir, 'leaf-under-test.pem');
  writeFileSync(leafFile, leafPem);
  const result = spawnSync('openssl', ['verify', '-CAfile', rootFile(dir), '-purpose', 'sslserver', leafFile], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

describe('local CA', () => {
  test('is created with its key 0600 in a 0700 folder, and a root constrained to dev names', async (t) => {
    const dir = tempDir(t);
    const ca = await createCa(dir, ['app.localhost', '*.shop.test', 'api.dev.example.com']);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600);
    assert.deepEqual(ca.permittedNames, ['api.dev.example.com', 'localhost', 'test']);
    const { x509 } = await loadX509();
    const root = new x509.X509Certificate(readFileSync(rootFile(dir)));
    const constraints = root.getExtension('2.5.29.30');
    assert.ok(constraints?.critical, 'Name Constraints are critical');
    assert.match(root.subject, /norikae-splice local CA \(.+@.+\)/);
    // Read back from disk: the same key and the same constraints.
    const loaded = await loadCa(dir);
    assert.deepEqual(loaded?.permittedNames, ca.permittedNames);
    assert.equal(loaded?.rootPem, ca.rootPem);
  });

  test('subtreesFor: localhost always, private top-level names whole, other names only themselves', () => {
    assert.deepEqual(subtreesFor([]), ['localhost']);
    assert.deepEqual(subtreesFor(['a.localhost', '*.b.localhost', 'localhost']), ['localhost']);
    assert.deepEqual(subtreesFor(['app.test', 'x.app.test', 'nas.home.arpa']), ['home.arpa', 'localhost', 'test']);
    assert.deepEqual(subtreesFor(['*.dev.example.com', 'a.dev.example.com']), ['dev.example.com', 'localhost']);
  });

  test('a root whose key is not its own is refused with the way out', async (t) => {
    const dir = tempDir(t);
    await createCa(dir, []);
    const other = tempDir(t);
    await createCa(other, []);
    writeFileSync(join(dir, KEY_FILE), readFileSync(join(other, KEY_FILE)));
    await assert.rejects(loadCa(dir), (err: unknown) => err instanceof CaError && /trust --renew/.test(err.message));
  });

  test('OpenSSL accepts a leaf for a configured name and refuses one for example.com signed by the same key', { skip: needOpenssl }, async (t) => {
    const dir = tempDir(t);
    const ca = await createCa(dir, ['app.localhost', 'shop.test']);
    for (const name of ['app.localhost', 'deep.sub.app.localhost', 'shop.test']) {
      const result = opensslVerify(dir, (await mintLeaf(ca, name)).certPem);
      assert.ok(result.ok, `${name}: ${result.output}`);
    }
    // The CA's own key, used outside its constraints (as a thief would): the root itself forbids it.
    const rogue = opensslVerify(dir, (await mintLeaf(ca, 'example.com')).certPem);
    assert.equal(rogue.ok, false);
    assert.match(rogue.output, /permitted subtree violation/);
    const lookalike = opensslVerify(dir, (await mintLeaf(ca, 'localhost.example.com')).certPem);
    assert.equal(lookalike.ok, false);
    assert.match(execFileSync('openssl', ['x509', '-in', rootFile(dir), '-noout', '-ext', 'nameConstraints'], { encoding: 'utf8' }),
      /critical[\s\S]*DNS:localhost[\s\S]*IP:127\.0\.0\.0\/255\.0\.0\.0[\s\S]*IP:0:0:0:0:0:0:0:1\/FFFF/);
  });

  test('serial numbers are positive, 16 bytes, and read back as written (no leading zero byte for DER to drop)', async (t) => {
    // Before, about one serial in 128 started with 00, and a leaf read back from disk had another serial.
    const serials = Array.from({ length: 4000 }, () => serialNumber());
    for (const serial of serials) assert.match(serial, /^[4-7][0-9a-f]{31}$/);
    assert.equal(new Set(serials).size, serials.length);
    const ca = await createCa(tempDir(t), ['app.localhost']);
    const leaf = await mintLeaf(ca, 'app.localhost', Date.now(), 30);
    assert.equal(new (await loadX509()).x509.X509Certificate(leaf.certPem).serialNumber, leaf.serial);
  });

  test('leaves last at most 397 days', async (t) => {
    const ca = await createCa(tempDir(t), []);
    await assert.rejects(mintLeaf(ca, 'app.localhost', Date.now(), 398), RangeError);
    const leaf = await mintLeaf(ca, 'app.localhost', Date.now(), 397);
    assert.ok(leaf.notAfter - leaf.notBefore <= (397 * 24 + 1) * 3600 * 1000);
  });
});

describe('Certificates', () => {
  test('concurrent first handshakes for one name make one mint', async (t) => {
    const certificates = new Certificates({ dir: tempDir(t), hosts: () => ['app.localhost'] });
    const leaves = await Promise.all(Array.from({ length: 20 }, () => certificates.leaf('app.localhost')));
    assert.equal(certificates.minted, 1);
    assert.equal(new Set(leaves.map((leaf) => leaf.serial)).size, 1);
  });

  test('a leaf is kept on disk (0600) and reused by the next process; one near its end is minted again', async (t) => {
    const dir = tempDir(t);
    let now = Date.now();
    const first = new Certificates({ dir, hosts: () => [], now: () => now, leafDays: 30 });
    const leaf = await first.leaf('app.localhost');
    assert.equal(statSync(join(dir, 'leaves', 'app.localhost.pem')).mode & 0o777, 0o600);

    const second = new Certificates({ dir, hosts: () => [], now: () => now, leafDays: 30 });
    assert.equal((await second.leaf('app.localhost')).serial, leaf.serial);
    assert.equal(second.minted, 0, 'read from disk, not minted');

    // Ten days before the end (less than a third left): renewed, in memory and on disk.
    now += 20 * 24 * 3600 * 1000 + 1;
    const renewed = await first.leaf('app.localhost');
    assert.notEqual(renewed.serial, leaf.serial);
    assert.equal(first.minted, 2);
    assert.ok(renewed.notAfter > leaf.notAfter);
    const third = new Certificates({ dir, hosts: () => [], now: () => now, leafDays: 30 });
    assert.equal((await third.leaf('app.localhost')).serial, renewed.serial);
  });

  test('a name outside the CA\'s constraints gets no certificate, and the error says to renew', async (t) => {
    const dir = tempDir(t);
    await createCa(dir, ['app.localhost']);
    const certificates = new Certificates({ dir, hosts: () => ['app.localhost', 'shop.test'] });
    await assert.rejects(certificates.leaf('shop.test'), (err: unknown) => err instanceof CaError
      && err.code === ErrorCode.CA_CONSTRAINTS && /trust --renew/.test(err.message));
    assert.equal(certificates.minted, 0);
  });

  test('a CA made on first need covers the configured names', async (t) => {
    const dir = tempDir(t);
    const certificates = new Certificates({ dir, hosts: () => ['shop.test'] });
    assert.equal((await certificates.leaf('shop.test')).name, 'shop.test');
    assert.deepEqual((await certificates.authority()).permittedNames, ['localhost', 'test']);
  });
});
