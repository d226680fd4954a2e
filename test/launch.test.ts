// Spawning launched commands: from the spawner process, so that the main thread never waits for a
// fork and exec; launches at once take turns of the event loop.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchCommand, spawnTurn, type LaunchedProcess } from '../lib/launch.js';
import { LaunchError } from '../lib/errors.js';
import { isLiveProcess, processStartTime } from '../lib/process-group.js';
import { ServiceLog } from '../lib/service-log.js';
import { spawnerPid, spawnFromHelper, startSpawner, type SpawnReply } from '../lib/spawner.js';
import { countTurns, waitFor } from './helpers.js';

const spec = (command: string, env: Record<string, string> = {}) => ({ name: 'app', command, cwd: undefined, env, port: 0 });

/** The main thread's voluntary context switches so far: each time it slept in a system call. */
function mainThreadSleeps(): number {
  return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8'))![1]);
}

/** A process's resident memory, from /proc. */
function rssKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('launchCommand', () => {
  test('a launch does not put the main thread to sleep: the fork and exec happen in the spawner process', async (t) => {
    const launched: LaunchedProcess[] = [];
    t.after(() => Promise.all(launched.map((each) => each.stop(1000))));
    // Started once, ahead of launches (as norikae does when it starts): forking it is a wait of its own.
    startSpawner();
    // child_process.spawn on this thread sleeps in read() until the child execs: one sleep per
    // launch at least (10 of 10 before the spawner). Without it none; 2 allow for a lock in V8.
    let sleeps = 0;
    for (let i = 0; i < 10; i++) {
      const before = mainThreadSleeps();
      const launching = launchCommand(spec('exec sleep 30'), new ServiceLog());
      sleeps += mainThreadSleeps() - before;
      launched.push(await launching);
    }
    assert.ok(sleeps <= 2, `the main thread slept ${sleeps} times in 10 launches`);
    for (const each of launched) {
      assert.ok(isLiveProcess(each.pid), `pid ${each.pid} runs`);
      assert.equal(each.started, processStartTime(each.pid), 'its start time, read at the spawn');
    }
  });

  test('output and exit come through the spawner, the last words included', async () => {
    const log = new ServiceLog();
    const launched = await launchCommand(spec('echo out; echo err >&2; exit 3'), log);
    const status = await launched.exited;
    assert.deepEqual(status, { code: 3, signal: null });
    assert.deepEqual([...log.tail(10)].sort(), ['err', 'out']);
  });

  test('output waits in the command\'s pipe, not in the spawner, while norikae does not take it', async () => {
    const bytes = 48 * 1024 * 1024;
    let received = 0;
    const spawned = await spawnFromHelper(
      { file: '/bin/sh', args: ['-c', `head -c ${bytes} /dev/zero`], cwd: undefined, env: process.env },
      { output: (chunk) => (received += chunk.length), exit: () => {} },
    );
    const spawner = spawnerPid()!;
    const rssBefore = rssKiB(spawner);
    // This thread takes nothing for a second, as a busy event loop would not.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    const grown = rssKiB(spawner) - rssBefore;
    assert.ok(grown < 16 * 1024, `the spawner grew by ${grown} KiB holding output`);
    assert.ok(isLiveProcess(spawned.pid), 'the command waits on its full pipe');
    // And nothing is lost once it is taken again.
    for (let i = 0; i < 200 && received < bytes; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.equal(received, bytes);
  });

  test('a shell that is reaped at once is still named by its start time', async () => {
    const launched = await launchCommand(spec('exit 0'), new ServiceLog());
    await launched.exited;
    assert.match(launched.started ?? '', /^\d+$/);
    assert.deepEqual(launched.tree.seen(), [{ pid: launched.pid, started: launched.started }]);
  });

  test('a command that cannot start (an environment too large for exec) is a LaunchError', async () => {
    await assert.rejects(launchCommand(spec('exit 0', { BIG: 'x'.repeat(200_000) }), new ServiceLog()), (err) => {
      assert.ok(err instanceof LaunchError);
      assert.equal(err.message, 'cannot launch app: /bin/sh could not be started');
      return true;
    });
  });

  test('a cwd that is not a folder is a LaunchError, and nothing is spawned', async () => {
    await assert.rejects(launchCommand({ ...spec('exit 0'), cwd: '/nonexistent/folder' }, new ServiceLog()), {
      name: 'LaunchError', message: 'cannot launch app: its cwd /nonexistent/folder is not a folder',
    });
  });
});

describe('spawn turns', () => {
  test('twenty launches at once spawn on twenty turns of the event loop, in the order they asked', async () => {
    const loop = countTurns();
    const order: number[] = [];
    const turns: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => spawnTurn().then(() => {
      order.push(i);
      turns.push(loop.turns());
    })));
    loop.stop();
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(new Set(turns).size, 20, `turns: ${turns.join(' ')}`);
  });
});

describe('the spawner process when norikae is gone', () => {
  /** spawn-helper.js forked as norikae forks it, its replies collected. */
  function forkSpawner(t: TestContext): ChildProcess & { replies: SpawnReply[] } {
    const spawner = fork(fileURLToPath(new URL('../lib/spawn-helper.js', import.meta.url)), [], {
      execArgv: [], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const replies: SpawnReply[] = [];
    spawner.on('message', (reply: SpawnReply) => replies.push(reply));
    t.after(() => {
      if (spawner.exitCode === null && spawner.signalCode === null) spawner.kill('SIGKILL');
    });
    return Object.assign(spawner, { replies });
  }

  const request = (id: number) => ({ type: 'spawn' as const, id, file: '/bin/sh', args: ['-c', 'exec sleep 30'], cwd: undefined, env: process.env });

  test('a spawn norikae had not taken on is killed; one it had is left to norikae\'s record', async (t) => {
    const spawner = forkSpawner(t);
    spawner.send(request(1));
    spawner.send(request(2));
    await waitFor(() => spawner.replies.filter((reply) => reply.type === 'spawned').length === 2, 'both spawned');
    const pidOf = (id: number): number => (spawner.replies.find((reply) => reply.type === 'spawned' && reply.id === id) as { pid: number }).pid;
    const [unadopted, adopted] = [pidOf(1), pidOf(2)];
    t.after(() => {
      for (const pid of [unadopted, adopted]) if (isLiveProcess(pid)) process.kill(-pid, 'SIGKILL');
    });
    spawner.send({ type: 'adopted', id: 2 });
    // norikae's end, as the spawner sees it whichever way norikae ended.
    await new Promise((resolve) => setTimeout(resolve, 100));
    spawner.disconnect();
    await once(spawner, 'exit');
    await waitFor(() => !isLiveProcess(unadopted), 'the spawn nobody had taken on to be killed', 5000);
    assert.ok(isLiveProcess(adopted), 'the adopted one is norikae\'s (its launch record) to stop');
  });
});
