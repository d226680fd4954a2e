// What the CLI loads before it does its work: a start and a `check` must not pay for modules only
// other paths use (the X.509 libraries are half of the module graph), and those paths must still
// get them when they need them. The CLI runs with a preload that records every module it
// resolves (fixtures/record-modules.ts). Which of lib/'s modules a command evaluates is seen on
// dist/bin/cli.js, whose bundle (the command users run) evaluates a module when it is imported
// just the same; what is required from node_modules is seen on the bundle itself.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitWithin, getHead, httpsRequest, parseResponse, startCli, startHttpUpstream, waitFor } from './helpers.js';

const RECORD = fileURLToPath(new URL('./fixtures/record-modules.js', import.meta.url));
/** The command line as separate modules, before the build bundles it into CLI. */
const UNBUNDLED_CLI = fileURLToPath(new URL('../bin/cli.js', import.meta.url));
const X509_PACKAGES = /\/node_modules\/(@peculiar\/|reflect-metadata\/|tsyringe\/)/;

/** A temporary folder removed after the test. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The CLI with `args` (the bundled command, or `script`), its modules recorded in `dir`/modules;
 * killed (by PID) after the test.
 */
function startRecorded(t: TestContext, dir: string, args: string[], script?: string) {
  const modules = join(dir, 'modules');
  writeFileSync(modules, '');
  const env = { NORIKAE_TEST_MODULES: modules, XDG_DATA_HOME: join(dir, 'data'), XDG_STATE_HOME: join(dir, 'state') };
  const child = startCli(t, args, undefined, env, ['--import', RECORD], script);
  const imported = (): { url: string; format: string }[] => readFileSync(modules, 'utf8').split('\n').filter(Boolean).map((line) => {
    const [url, format] = line.split(' ');
    return { url: url!, format: format! };
  });
  return Object.assign(child, { modules: () => imported().map(({ url }) => url), imported });
}

describe('startup', () => {
  test('check loads the config\'s modules, none of the proxy\'s or the other commands\', and prints and exits as before', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, '[service.app]\nhost = ["app.localhost", "*.app.localhost"]\nport = 3000\ncommand = "no-such-program-here {port}"\n');
    const child = startRecorded(t, dir, ['check', '--config', file], UNBUNDLED_CLI);
    assert.equal(await exitWithin(child, 20_000, 'check'), 0);
    const { stdout, stderr } = child.output();
    assert.equal(stdout, `config ${file}\n  app  http://app.localhost, http://*.app.localhost → 127.0.0.1:3000  (command: no-such-program-here {port})\nconfig is valid\n`);
    assert.match(stderr, /no-such-program-here/, 'the warnings are still said');
    const loaded = child.modules();
    assert.ok(loaded.some((url) => url.endsWith('/lib/config-file.js')), 'the recorder sees the CLI\'s own modules');
    const notForCheck = [
      'app', 'server', 'supervisor', 'dashboard', 'doctor', 'add-service', 'control-client', 'service-install', 'trust-store', 'local-ca', 'x509',
      'terminal', 'launch',
    ];
    assert.deepEqual(loaded.filter((url) => notForCheck.some((name) => url.endsWith(`/lib/${name}.js`))), []);
  });

  test('a start listens without the X.509 libraries, and the first TLS handshake requires them to mint its leaf', async (t) => {
    const dir = tempDir(t);
    const { port: upstreamPort } = await startHttpUpstream(t);
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, `[service.app]\nhost = "app.localhost"\nport = ${upstreamPort}\n`);
    const child = startRecorded(t, dir, ['--config', file, '--listen', '127.0.0.1:0']);
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(child.output().stderr) || child.exitCode !== null, 'norikae to listen');
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.output().stderr)?.[1]);
    assert.ok(port > 0, child.output().stderr);
    assert.ok(child.modules().some((url) => url.endsWith('/bin/norikae-splice.js')), 'the recorder sees the command');
    assert.ok(child.imported().some(({ url, format }) => format === 'required' && url.includes('/node_modules/')), 'the recorder sees what is required');
    assert.deepEqual(child.modules().filter((url) => X509_PACKAGES.test(url)), []);
    // An import of a CommonJS file makes node lex its source for export names: lib/ requires them (packages.ts).
    assert.deepEqual(child.imported().filter(({ format }) => format === 'commonjs').map(({ url }) => url), []);

    const first = parseResponse(Buffer.from(await httpsRequest(t, port, 'app.localhost', '', getHead('app.localhost'), { rejectUnauthorized: false })));
    assert.equal(first.status, 200);
    // The leaf was signed by the CA that handshake made: a client that trusts only its root accepts it.
    const root = readFileSync(join(dir, 'data', 'norikae', 'root-ca.pem'), 'utf8');
    assert.equal(parseResponse(Buffer.from(await httpsRequest(t, port, 'app.localhost', root, getHead('app.localhost')))).status, 200);
    assert.notDeepEqual(child.modules().filter((url) => X509_PACKAGES.test(url)), [], 'the handshake required the X.509 libraries');
    // It loaded them with require: no CommonJS file was imported, before listening or since.
    assert.deepEqual(child.imported().filter(({ format }) => format === 'commonjs').map(({ url }) => url), []);
    child.kill('SIGTERM');
    assert.equal(await exitWithin(child, 10_000, 'norikae'), 0);
  });
});
