// The walks of /proc that follow a launch's processes, with real processes in groups of their own.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { countTurns, waitFor } from './helpers.js';
import { processStartTime, statFields } from '../lib/process-group.js';
import { LaunchTree, PROCESSES_PER_TURN, readProcessesInTurns, watchTree, watchWalkCount } from '../lib/process-tree.js';

/** `sleep 30` leading a group of its own (as a launch's shell does), SIGKILLed after the test. */
function sleeper(t: TestContext, command = 'sleep'): ChildProcess & { pid: number } {
  const child = spawn(command, ['30'], { detached: true, stdio: 'ignore' });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  assert.ok(child.pid !== undefined, `${command} did not start`);
  return child as ChildProcess & { pid: number };
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('process trees', () => {
  test('launches do not walk /proc at the spawn: twenty at once wait for the walk once a second, one for all', async (t) => {
    const children = Array.from({ length: 20 }, () => sleeper(t));
    const before = watchWalkCount();
    const trees = children.map((child) => new LaunchTree(child.pid, [{ pid: child.pid, started: processStartTime(child.pid)! }]));
    const unwatch = trees.map((tree) => watchTree(tree));
    t.after(() => unwatch.forEach((stop) => stop()));
    await nextTurn();
    assert.equal(watchWalkCount() - before, 0, 'no walk at the launches');
    // Within a second or so, one walk; bounded generously for a loaded machine.
    await waitFor(() => watchWalkCount() > before, 'the walk once a second', 10_000);
    assert.ok(watchWalkCount() - before <= 10, 'not one walk per launch');
    // The walk did its work: each tree still knows its process, which lives.
    for (const [i, tree] of trees.entries()) assert.deepEqual(tree.alive().map(({ pid }) => pid), [children[i]!.pid]);
  });

  test('the watch reads /proc a few processes per turn of the event loop, not all in one', async (t) => {
    // Enough processes of our own that the walk takes several turns even on an empty machine.
    for (let i = 0; i < PROCESSES_PER_TURN * 2; i++) sleeper(t);
    const loop = countTurns();
    const table = await readProcessesInTurns();
    loop.stop();
    const turns = loop.turns();
    assert.ok(table.size > PROCESSES_PER_TURN * 2, `${table.size} processes`);
    assert.ok(turns >= Math.floor((table.size - 1) / PROCESSES_PER_TURN), `${table.size} processes read over ${turns} turns`);
    assert.equal(table.get(process.pid)?.ppid, process.ppid, 'this process, with its parent');
  });

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
