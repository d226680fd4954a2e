// The walks of /proc that follow a launch's processes, with real processes in groups of their own.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { processStartTime, statFields } from '../lib/process-group.js';

/** `sleep 30` leading a group of its own (as a launch's shell does), SIGKILLed after the test. */
function sleeper(t: TestContext, command = 'sleep'): ChildProcess & { pid: number } {
  const child = spawn(command, ['30'], { detached: true, stdio: 'ignore' });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  assert.ok(child.pid !== undefined, `${command} did not start`);
  return child as ChildProcess & { pid: number };
}

describe('process trees', () => {
  test('statFields reads the fields after a command name with spaces and parentheses', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'norikae-stat-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // The kernel names a process after the file it ran: this one's name is `a) b (c`.
    const odd = join(dir, 'a) b (c');
    symlinkSync('/bin/sleep', odd);
    const child = sleeper(t, odd);
    const fields = statFields(child.pid)!;
    assert.ok(fields !== undefined);
    assert.match(fields[0]!, /^[RSD]$/, 'the state');
    assert.equal(Number(fields[2]), child.pid, 'its own group');
    assert.equal(fields[19], processStartTime(child.pid));
    assert.equal(statFields(2 ** 22 + 1), undefined, 'no such process');
  });
});
