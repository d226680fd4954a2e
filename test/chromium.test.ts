// When the browser tests run, skip or fail: decided by test/chromium.ts from the environment.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chooseChromium } from './chromium.js';

const MISSING = '/nonexistent/norikae-test/chromium';

describe('chooseChromium', () => {
  test('a missing Chromium skips, naming the path and the one command that installs it', () => {
    const expected = { skip: `no Chromium at ${MISSING}; install Debian's with \`apt-get install chromium\`` };
    assert.deepEqual(chooseChromium({}, MISSING), expected);
    assert.deepEqual(chooseChromium({ CI: 'false' }, MISSING), expected);
    assert.deepEqual(chooseChromium({ CI: '' }, MISSING), expected);
  });

  test('under CI a missing Chromium is a failure, not a skip', () => {
    for (const CI of ['true', '1', 'TRUE']) {
      const choice = chooseChromium({ CI }, MISSING);
      assert.ok('fail' in choice, `CI=${CI}: ${JSON.stringify(choice)}`);
      assert.match(choice.fail, /no Chromium at \/nonexistent\/norikae-test\/chromium; install Debian's with `apt-get install chromium`/);
    }
  });

  test('a file that cannot be executed counts as missing', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-chromium-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'chromium');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    // root may execute nothing without an x bit either (X_OK needs one for root too)
    assert.ok('skip' in chooseChromium({}, file));
  });

  test('an executable is used, in CI or not; CHROMIUM_PATH names another one', () => {
    assert.deepEqual(chooseChromium({}, process.execPath), { executable: process.execPath });
    assert.deepEqual(chooseChromium({ CI: 'true' }, process.execPath), { executable: process.execPath });
    assert.deepEqual(chooseChromium({ CHROMIUM_PATH: process.execPath }), { executable: process.execPath });
    assert.deepEqual(chooseChromium({ CHROMIUM_PATH: MISSING, CI: 'true' }), chooseChromium({ CI: 'true' }, MISSING));
  });
});
