// Process groups as /proc shows them, with real processes in groups of their own.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { describe, test, type TestContext } from 'node:test';
import { groupAlive, groupMembers, stopGroup, waitForGroupExit } from '../lib/process-group.js';
import { nextData } from './helpers.js';

/** A node process leading a group of its own, that ignores SIGTERM if `stubborn`; SIGKILLed after the test. */
async function groupLeader(t: TestContext, stubborn: boolean): Promise<number> {
  const script = `${stubborn ? "process.on('SIGTERM', () => {});" : ''} setInterval(() => {}, 1000); console.log('ready');`;
  const child = spawn(process.execPath, ['-e', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  // Its SIGTERM handler is in place once it speaks.
  await nextData(child.stdout, 'the stub\'s ready line');
  return child.pid!;
}

describe('process groups', () => {
  test('waitForGroupExit is bounded: false once the time has passed with the group still alive', async (t) => {
    const pgid = await groupLeader(t, false);
    assert.deepEqual(groupMembers(pgid), [pgid]);
    const started = performance.now();
    assert.equal(await waitForGroupExit(pgid, 200), false);
    const waited = performance.now() - started;
    assert.ok(waited >= 200 && waited < 2000, `waited ${waited} ms`);
    assert.equal(groupAlive(pgid), true);
  });

  test('stopGroup ends a group with SIGTERM, and SIGKILLs one that ignores it once the timeout has passed', async (t) => {
    const polite = await groupLeader(t, false);
    await stopGroup(polite, 5000);
    assert.equal(groupAlive(polite), false);

    const stubborn = await groupLeader(t, true);
    const started = performance.now();
    await stopGroup(stubborn, 300);
    const waited = performance.now() - started;
    assert.equal(groupAlive(stubborn), false);
    assert.ok(waited >= 300 && waited < 3000, `stopped after ${waited} ms`);
  });
});
