// Replacing a file whole, flushed to disk or not: the new text under the name, the mode given (or
// the old one kept), a symlink followed, and no temporary file left behind.

import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { replaceFile } from '../lib/atomic-file.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-atomic-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const flush of [true, false]) {
  test(`replaceFile${flush ? '' : ' with flush: false'} writes the text whole, with the mode given or the old one, through a link, leaving nothing else`, (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'secret');
    replaceFile(file, 'first\n', 0o600, { flush });
    assert.equal(readFileSync(file, 'utf8'), 'first\n');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    replaceFile(file, 'second\n', 0o600, { flush });
    assert.equal(readFileSync(file, 'utf8'), 'second\n');

    const shared = join(dir, 'shared');
    writeFileSync(shared, 'old\n');
    chmodSync(shared, 0o640);
    const link = join(dir, 'link');
    symlinkSync(shared, link);
    replaceFile(link, 'new\n', undefined, { flush });
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link stays a link');
    assert.equal(readFileSync(shared, 'utf8'), 'new\n');
    assert.equal(statSync(shared).mode & 0o777, 0o640, 'no mode given: the old one is kept');
    assert.deepEqual(readdirSync(dir).sort(), ['link', 'secret', 'shared']);
  });
}
