// Process groups as /proc shows them, with real processes in groups of their own.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, test, type TestContext } from 'node:test';
import { groupAlive, groupMembers, isLiveProcess, stopGroup, waitForGroupExit } from '../lib/process-group.js';
import { nextData, waitFor } from './helpers.js';
import { PYTHON3, requireTool } from './system-tools.js';

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

describe('a process whose main thread has exited', () => {
  test('is not gone while another of its threads holds its listening socket', async (t) => {
    const python = requireTool(t, PYTHON3);
    if (python === undefined) return;
    // The main thread ends (pthread_exit) and /proc/PID/stat says 'Z', while a second thread lives
    // on with the process's files: a stop that took that for gone let a connect reach the socket.
    const script = [
      'import ctypes, socket, threading, time',
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()",
      'print(s.getsockname()[1], flush=True)',
      'threading.Thread(target=time.sleep, args=(60,)).start()',
      'ctypes.CDLL(None).pthread_exit(None)',
    ].join('\n');
    const child = spawn(python, ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    t.after(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Gone already.
      }
    });
    const port = Number(String(await nextData(child.stdout, 'the port')).trim());
    await waitFor(() => readFileSync(`/proc/${child.pid}/stat`, 'latin1').split(') ')[1]!.startsWith('Z'), 'the main thread to exit', 5000);
    assert.equal(isLiveProcess(child.pid!), true);
    assert.deepEqual(groupMembers(child.pid!), [child.pid]);
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      }).once('error', () => resolve(false));
    });
    assert.equal(accepted, true, 'the socket still takes connections');
    await stopGroup(child.pid!, 2000);
    assert.equal(isLiveProcess(child.pid!), false);
    assert.equal(groupAlive(child.pid!), false);
  });
});
