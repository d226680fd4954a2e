// A stop, a restart and a reload that removes the service, in each state a launch waits in: for a
// dependency, for its `delay`, for readiness. Real processes (the dev-server fixture) behind a real
// splicer; what a waiting client gets and which processes are left is checked for every pair; and
// the same while the launch's process is being spawned (the spawner process held meanwhile).

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { isLiveProcess, processGroupOf } from '../lib/process-group.js';
import { readProcessesInTurns } from '../lib/process-tree.js';
import { spawnerPid, startSpawner } from '../lib/spawner.js';
import { delay, freePort, waitFor } from './helpers.js';
import { start, type Harness } from './launch-harness.js';

type Wait = 'dependency' | 'delay' | 'readiness';

/** Service tables where web's launch waits in `wait` for `ms` (db is what it requires, if any). */
async function tables(wait: Wait, ms: number): Promise<{ db: string; web: string }> {
  const db = `[service.db]\nport = ${await freePort()}\ncommand = "{server} --listen-after ${wait === 'dependency' ? ms : 0} --record {record}"\n`;
  const web = `[service.web]\nport = ${await freePort()}\nready_timeout = 60\n`
    + `command = "{server} --listen-after ${wait === 'readiness' ? ms : 0} --record {record}"\n`
    + (wait === 'delay' ? `delay = ${ms / 1000}\n` : '')
    + (wait === 'dependency' ? 'requires = ["db"]\n' : '');
  return { db, web };
}

/** Resolves once web's launch waits in `wait`: db is being launched, or web's process is. */
async function waiting(h: Harness, wait: Wait): Promise<void> {
  const line = wait === 'dependency' ? 'launching db: ' : 'launching web: ';
  await waitFor(() => h.log.lines.some((entry) => entry.startsWith(line)), `web's launch to wait for its ${wait}`);
  assert.equal(h.supervisor.info('web')!.state, 'starting');
}

/** `promise`, or a failure naming `what` after `ms`: a cancelled wait must not run its course. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every process web's launches started has exited. */
async function noWebLeft(h: Harness, webPort: number): Promise<void> {
  const ports = new Set([webPort]);
  await waitFor(() => h.launches().filter((launch) => ports.has(launch.port)).every((launch) => !isLiveProcess(launch.pid)), 'web\'s processes to exit');
}

const portOf = (table: string): number => Number(/port = (\d+)/.exec(table)![1]);

for (const wait of ['dependency', 'delay', 'readiness'] as const) {
  describe(`while a launch waits for its ${wait}`, () => {
    test('a stop answers the waiting clients 503 at once, leaves no process of the service, and holds it', async (t) => {
      const { db, web } = await tables(wait, 20_000);
      const h = await start(t, db + web);
      const response = h.get('web.localhost');
      await waiting(h, wait);
      await h.supervisor.stopByUser('web');
      const answer = await within(response, 5000, 'the answer after the stop');
      assert.equal(answer.status, 503, answer.body);
      assert.match(answer.body, /web was stopped by you/);
      const info = h.supervisor.info('web')!;
      assert.equal(info.state, 'stopped');
      assert.equal(info.stoppedByUser, true);
      assert.equal(info.pid, null);
      await noWebLeft(h, portOf(web));
      if (wait === 'dependency') assert.ok(!h.log.lines.some((line) => line.startsWith('launching web')), 'web was never spawned');
      // Held: a new request does not launch it.
      assert.equal((await h.get('web.localhost')).status, 503);
    });

    test('a restart hands the waiting clients to the new launch, which serves them', async (t) => {
      const { db, web } = await tables(wait, 1500);
      const h = await start(t, db + web);
      const response = h.get('web.localhost');
      await waiting(h, wait);
      const restarted = h.supervisor.restart('web');
      const answer = await within(response, 20_000, 'the answer after the restart');
      assert.equal(answer.status, 200, answer.body);
      assert.equal((await restarted).state, 'running');
      // Waiting for a dependency, web was not spawned before the restart; otherwise it was, once
      // (its process may have been stopped before it got as far as recording itself).
      assert.equal(h.log.lines.filter((line) => line.startsWith('launching web: ')).length, wait === 'dependency' ? 1 : 2);
      const webLaunches = h.launches().filter((launch) => launch.port === portOf(web));
      assert.equal(webLaunches.filter((launch) => isLiveProcess(launch.pid)).length, 1, 'only the new launch runs');
      assert.equal(JSON.parse(answer.body).pid, webLaunches.at(-1)!.pid, 'served by the new launch');
    });

    test('a reload that removes the service answers the waiting clients 503 and stops what it started', async (t) => {
      const { db, web } = await tables(wait, 20_000);
      const h = await start(t, db + web);
      const response = h.get('web.localhost');
      await waiting(h, wait);
      await h.reconfigure(db);
      const answer = await within(response, 5000, 'the answer after the reload');
      assert.equal(answer.status, 503, answer.body);
      assert.match(answer.body, /web was not launched: it was removed from the config/);
      assert.equal(h.supervisor.info('web'), undefined);
      await noWebLeft(h, portOf(web));
      // The host is gone with it.
      assert.equal((await h.get('web.localhost')).status, 404);
    });
  });
}

/** Children of the spawner process that live: every process a launch spawned and nothing stopped yet. */
async function spawnedAlive(spawner: number): Promise<number[]> {
  return [...(await readProcessesInTurns())].filter(([, entry]) => entry.ppid === spawner && !entry.zombie).map(([pid]) => pid);
}

/**
 * Holds the spawner process (SIGSTOP) so that a spawn asked for now stays under way until
 * `resume`: a stop, a restart or a reload can then come mid-spawn, as they may on a busy machine.
 */
async function holdSpawner(t: TestContext): Promise<{ pid: number; resume: () => void }> {
  startSpawner();
  const pid = spawnerPid()!;
  assert.deepEqual(await spawnedAlive(pid), [], 'no launch of an earlier test left running');
  process.kill(pid, 'SIGSTOP');
  const resume = (): void => void process.kill(pid, 'SIGCONT');
  // Before the harness's own clean-up, which would wait for the spawn.
  t.after(resume);
  return { pid, resume };
}

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const pending = Symbol('pending');
  return await Promise.race([promise.then(() => undefined, () => undefined), delay(ms).then(() => pending)]) === pending;
}

describe('while its process is being spawned', () => {
  const web = async (): Promise<string> => `[service.web]\nport = ${await freePort()}\ncommand = "{server} --record {record}"\n`;

  test('a stop waits for the process, stops it, answers 503 and holds the service', async (t) => {
    const spawner = await holdSpawner(t);
    const h = await start(t, await web());
    const response = h.get('web.localhost');
    await waiting(h, 'readiness');
    const stopped = h.supervisor.stopByUser('web');
    const waited = await pendingAfter(stopped, 300);
    spawner.resume();
    assert.ok(waited, 'the stop waits for the spawn');
    await within(stopped, 10_000, 'the stop');
    assert.equal((await within(response, 5000, 'the answer after the stop')).status, 503);
    assert.deepEqual(await spawnedAlive(spawner.pid), [], 'the process spawned meanwhile was stopped');
    const info = h.supervisor.info('web')!;
    assert.equal(info.state, 'stopped');
    assert.equal(info.stoppedByUser, true);
    assert.equal(info.pid, null);
    assert.equal((await h.get('web.localhost')).status, 503);
  });

  test('a restart stops the process spawned meanwhile, and the new launch serves the waiting client', async (t) => {
    const spawner = await holdSpawner(t);
    const h = await start(t, await web());
    const response = h.get('web.localhost');
    await waiting(h, 'readiness');
    const restarted = h.supervisor.restart('web');
    const waited = await pendingAfter(restarted, 300);
    spawner.resume();
    assert.ok(waited, 'the restart waits for the spawn');
    const answer = await within(response, 20_000, 'the answer after the restart');
    assert.equal(answer.status, 200, answer.body);
    assert.equal((await restarted).state, 'running');
    assert.equal(h.log.lines.filter((line) => line.startsWith('launching web: ')).length, 2);
    const alive = await spawnedAlive(spawner.pid);
    assert.equal(alive.length, 1, `only the new launch runs: ${alive.join(' ')}`);
    assert.equal(processGroupOf(JSON.parse(answer.body).pid), alive[0], 'served by the new launch');
  });

  test('a reload that removes the service stops the process spawned meanwhile', async (t) => {
    const table = await web();
    const spawner = await holdSpawner(t);
    const h = await start(t, table);
    const response = h.get('web.localhost');
    await waiting(h, 'readiness');
    const reloaded = h.reconfigure('');
    const waited = await pendingAfter(reloaded, 300);
    spawner.resume();
    assert.ok(waited, 'the removal waits for the spawn');
    await within(reloaded, 10_000, 'the reload');
    const answer = await within(response, 5000, 'the answer after the reload');
    assert.equal(answer.status, 503, answer.body);
    assert.deepEqual(await spawnedAlive(spawner.pid), [], 'the process spawned meanwhile was stopped');
    assert.equal(h.supervisor.info('web'), undefined);
  });
});

describe('the state table', () => {
  test('docs/architecture.md shows the transitions the code allows, no more and no fewer', async () => {
    const { readFileSync } = await import('node:fs');
    const { TRANSITIONS } = await import('../lib/service-runtime.js');
    const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');
    const documented: Record<string, string[]> = {};
    for (const [, state, next] of doc.matchAll(/^ *\| `(\w+)` \| [^|]+ \| ([^|]+) \|$/gm)) {
      documented[state!] = [...next!.matchAll(/`(\w+)`/g)].map((match) => match[1]!).sort();
    }
    const coded = Object.fromEntries(Object.entries(TRANSITIONS).map(([state, next]) => [state, [...next].sort()]));
    assert.deepEqual(documented, coded);
  });
});
