// `norikae-splice hosts sync | clean` on temporary hosts files only (never the real /etc/hosts).

import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { parseConfig } from '../lib/config-file.js';
import { ErrorCode, type NorikaeError } from '../lib/errors.js';
import { BLOCK_BEGIN, BLOCK_END, exactHostNames, unifiedDiff, updateHostsFile, withBlock } from '../lib/hosts-file.js';
import { cliForOtherUsers, runCli } from './helpers.js';

const CONFIG = `[service.shop]
host = ["shop.localhost", "*.shop.localhost", "Shop.test"]
port = 3000

[service.pg]
listen = 5433
port = 5432

[service.api]
port = 3001
`;

const config = parseConfig(CONFIG, '/home/me/norikae.toml');

/** A temporary folder, removed after the test. */
function folder(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-hosts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const SYSTEM_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n# The following lines are desirable for IPv6 capable hosts\nff02::1 ip6-allnodes\n';

describe('the block', () => {
  test('holds every exact name of the config (the dashboard\'s too) on 127.0.0.1 and ::1, and no wildcard', () => {
    assert.deepEqual(exactHostNames(config), ['shop.localhost', 'shop.test', 'api.localhost', 'norikae.localhost']);
    assert.deepEqual(exactHostNames(parseConfig(`dashboard = false\n${CONFIG}`, '/c.toml')), ['shop.localhost', 'shop.test', 'api.localhost']);
    const text = withBlock(SYSTEM_HOSTS, ['a.localhost', 'b.test']);
    assert.equal(text, `${SYSTEM_HOSTS}${BLOCK_BEGIN}\n# Written by \`norikae-splice hosts sync\` from its config; edit the config and sync again, not these lines.\n`
      + `127.0.0.1\ta.localhost\n::1\ta.localhost\n127.0.0.1\tb.test\n::1\tb.test\n${BLOCK_END}\n`);
  });

  test('everything outside the block stays byte for byte: a block in the middle, CRLF lines, trailing spaces', () => {
    const before = 'a  \r\n# norikae-splice begin\r\n127.0.0.1\told.localhost\r\n# norikae-splice end\r\nz\tlast  ';
    const after = withBlock(before, ['new.localhost']);
    assert.ok(after.startsWith('a  \r\n# norikae-splice begin\r\n'));
    assert.ok(after.endsWith('# norikae-splice end\r\nz\tlast  '));
    assert.match(after, /127\.0\.0\.1\tnew\.localhost\r\n::1\tnew\.localhost\r\n/);
    assert.doesNotMatch(after, /old\.localhost/);
    assert.equal(withBlock(after, undefined), 'a  \r\nz\tlast  ');
    // Synced twice: the same text.
    assert.equal(withBlock(after, ['new.localhost']), after);
  });

  test('a file without a newline at its end gets one before the block (the only change outside it)', () => {
    const synced = withBlock('127.0.0.1 localhost', ['a.localhost']);
    assert.ok(synced.startsWith(`127.0.0.1 localhost\n${BLOCK_BEGIN}\n`));
    assert.equal(withBlock(synced, undefined), '127.0.0.1 localhost\n');
    assert.equal(withBlock('', ['a.localhost']).startsWith(BLOCK_BEGIN), true);
    assert.equal(withBlock(SYSTEM_HOSTS, undefined), SYSTEM_HOSTS, 'cleaning a file without a block changes nothing');
  });

  test('a begin without an end, an end before its begin, or two blocks: refused, naming the line', () => {
    const refused = (text: string, pattern: RegExp): void => assert.throws(() => withBlock(text, ['a.localhost'], '/x/hosts'),
      (err: NorikaeError) => err.code === ErrorCode.HOSTS_FILE && pattern.test(err.message));
    refused(`a\n${BLOCK_BEGIN}\nb\n`, /^\/x\/hosts:2: the "# norikae-splice begin" and "# norikae-splice end" lines do not make a block/);
    refused(`${BLOCK_END}\n${BLOCK_BEGIN}\n`, /^\/x\/hosts:2: /);
    refused(`${BLOCK_BEGIN}\n${BLOCK_END}\n${BLOCK_BEGIN}\n${BLOCK_END}\n`, /more than one "# norikae-splice begin" block/);
  });

  test('the diff is a unified diff with three lines of context', () => {
    assert.equal(unifiedDiff('/h', 'a\nb\nc\nd\ne\n', 'a\nb\nc\nd\nX\ne\n'), '--- /h\n+++ /h\n@@ -2,4 +2,5 @@\n b\n c\n d\n+X\n e\n');
    assert.equal(unifiedDiff('/h', 'a\nold\n', 'a\n'), '--- /h\n+++ /h\n@@ -1,2 +1,1 @@\n a\n-old\n');
    assert.equal(unifiedDiff('/h', '', 'new\n'), '--- /h\n+++ /h\n@@ -0,0 +1,1 @@\n+new\n');
  });
});

describe('updateHostsFile', () => {
  test('sync writes the block atomically and keeps the file\'s mode; again changes nothing; clean restores the file', (t) => {
    const dir = folder(t);
    const file = join(dir, 'hosts');
    writeFileSync(file, SYSTEM_HOSTS);
    chmodSync(file, 0o640);
    const synced = updateHostsFile('sync', config, { file });
    assert.equal(synced.written, true);
    assert.equal(readFileSync(file, 'utf8'), withBlock(SYSTEM_HOSTS, exactHostNames(config)));
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(dir), ['hosts'], 'no temporary file is left');
    assert.deepEqual(updateHostsFile('sync', config, { file }), { file, changed: false, diff: '', written: false, names: exactHostNames(config) });
    const cleaned = updateHostsFile('clean', config, { file });
    assert.match(cleaned.diff, /^-# norikae-splice begin$/m);
    assert.equal(readFileSync(file, 'utf8'), SYSTEM_HOSTS);
  });

  test('--dry-run prints the diff and writes nothing', (t) => {
    const file = join(folder(t), 'hosts');
    writeFileSync(file, SYSTEM_HOSTS);
    const result = updateHostsFile('sync', config, { file, dryRun: true });
    assert.equal(result.written, false);
    assert.equal(readFileSync(file, 'utf8'), SYSTEM_HOSTS);
    assert.match(result.diff, new RegExp(`^--- ${file}\\n\\+\\+\\+ ${file}\\n@@ -2,3 \\+2,14 @@\\n`));
    assert.match(result.diff, /^\+127\.0\.0\.1\tshop\.localhost$/m);
    assert.match(result.diff, /^\+::1\tshop\.test$/m);
  });
});

describe('norikae-splice hosts (the CLI)', () => {
  const run = (args: string[], cwd: string) => runCli(args, { cwd });

  test('sync --dry-run prints the diff; sync writes; a second sync says it is up to date; clean removes it', async (t) => {
    const dir = folder(t);
    writeFileSync(join(dir, 'norikae.toml'), CONFIG);
    writeFileSync(join(dir, 'hosts'), SYSTEM_HOSTS);
    const dry = await run(['hosts', 'sync', '--dry-run', '--hosts-file', 'hosts'], dir);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^\+::1\tnorikae\.localhost\n\+# norikae-splice end\nnot written \(--dry-run\)\n$/m);
    assert.equal(readFileSync(join(dir, 'hosts'), 'utf8'), SYSTEM_HOSTS);
    const sync = await run(['hosts', 'sync', '--hosts-file', 'hosts'], dir);
    assert.match(sync.stdout, /hosts: 4 names on 127\.0\.0\.1 and ::1\n$/);
    assert.match((await run(['hosts', 'sync', '--hosts-file', 'hosts'], dir)).stdout, /^hosts is up to date\n$/);
    assert.match((await run(['hosts', 'clean', '--hosts-file', 'hosts'], dir)).stdout, /the norikae-splice block is removed\n$/);
    assert.equal(readFileSync(join(dir, 'hosts'), 'utf8'), SYSTEM_HOSTS);
    const wrong = await run(['hosts', 'add', '--hosts-file', 'hosts'], dir);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /hosts add: expected "hosts sync" or "hosts clean"/);
  });

  test('a hosts file it may not write: a clear message with the sudo command, and the file untouched', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-hosts-'));
    // Writable again before it is removed (after-hooks run in registration order).
    t.after(() => chmodSync(dir, 0o755));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'norikae.toml'), CONFIG);
    writeFileSync(join(dir, 'hosts'), SYSTEM_HOSTS);
    // Root may write anywhere: as root, the CLI runs as nobody, and the folder is root's.
    const asRoot = process.getuid?.() === 0;
    const uid = asRoot ? 65534 : undefined;
    chmodSync(dir, 0o755);
    if (asRoot) chownSync(dir, 0, 0);
    chmodSync(dir, 0o555);
    const args = ['hosts', 'sync', '--hosts-file', join(dir, 'hosts'), '--config', join(dir, 'norikae.toml')];
    const result = await runCli(args, { cwd: tmpdir(), uid, cli: uid === undefined ? undefined : cliForOtherUsers(t) });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`cannot write ${dir}/hosts: permission denied\\. It belongs to root; run it with sudo .*: sudo env "PATH=\\$PATH" norikae-splice hosts sync --config ${dir}/norikae\\.toml --hosts-file ${dir}/hosts\\n`));
    assert.equal(readFileSync(join(dir, 'hosts'), 'utf8'), SYSTEM_HOSTS);
  });
});
