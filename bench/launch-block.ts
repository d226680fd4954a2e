// How long launches block norikae's event loop, in one process, without the rest of norikae: COUNT
// dev servers (bench/cold-server.ts) launched with launchCommand, one per turn of the event loop
// as the supervisor does, from a process holding about as much memory as a running norikae. Says
// the time spent inside the launch calls (the main thread's own blocking), the longest gap of a
// 1 ms interval and the main thread's CPU and run-queue wait (/proc schedstat: time it was ready
// to run but another process had the core, which a loaded machine adds to every gap). The
// spawner process, where there is one, is started first, as norikae starts it.
// Usage: node dist/bench/launch-block.js [COUNT]

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { launchCommand, type LaunchedProcess } from '../lib/launch.js';
import { ServiceLog } from '../lib/service-log.js';
import { freeLowPort } from './targets.js';

const COUNT = Number(process.argv[2] ?? 20);
const coldServer = fileURLToPath(new URL('cold-server.js', import.meta.url));

// About a running norikae's heap: the fork copies page tables in proportion to what is mapped.
const ballast: number[][] = [];
for (let i = 0; i < 150; i++) ballast.push(Array.from({ length: 10_000 }, (_, j) => i * j));

/** The main thread's CPU and run-queue wait so far, in ms. */
function schedstat(): { cpuMs: number; waitMs: number } {
  const [cpu, wait] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return { cpuMs: cpu! / 1e6, waitMs: wait! / 1e6 };
}

// norikae starts the spawner process once it listens (see app.ts): so here, a second before the
// launches. A build without it (the comparison's "before") has no spawner.js.
const spawner = await import('../lib/spawner.js').catch(() => undefined);
if (spawner !== undefined) {
  spawner.startSpawner();
  await new Promise((resolve) => setTimeout(resolve, 1000));
}

const dir = mkdtempSync(join(tmpdir(), 'norikae-launch-block-'));
const launched: LaunchedProcess[] = [];
try {
  const ports: number[] = [];
  for (let i = 0; i < COUNT; i++) ports.push(await freeLowPort());
  let last = performance.now();
  let maxGapMs = 0;
  let gapsOver5 = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    if (now - last > 5) gapsOver5++;
    last = now;
  }, 1);
  const before = schedstat();
  const started = performance.now();
  let insideMs = 0;
  let worstInsideMs = 0;
  let firstPidMs: number | undefined;
  await Promise.all(ports.map((port, i) => new Promise<void>((resolve, reject) => {
    // One launch per turn, in order (see spawnTurn).
    let turns = i;
    const turn = (): void => {
      if (turns-- > 0) {
        setImmediate(turn);
        return;
      }
      const t0 = performance.now();
      const result = launchCommand({ name: `cold${i}`, command: `exec ${process.execPath} ${coldServer} {port} ${join(dir, `${i}.stamp`)}`, cwd: undefined, env: {}, port }, new ServiceLog());
      insideMs += performance.now() - t0;
      worstInsideMs = Math.max(worstInsideMs, performance.now() - t0);
      void Promise.resolve(result).then((process) => {
        launched.push(process);
        firstPidMs ??= performance.now() - started;
        resolve();
      }, reject);
    };
    setImmediate(turn);
  })));
  const spawnedMs = performance.now() - started;
  // Until every server listens, so the gaps cover their boot too.
  const deadline = performance.now() + 20_000;
  for (let i = 0; i < COUNT; i++) {
    while (performance.now() < deadline) {
      try {
        readFileSync(join(dir, `${i}.stamp`));
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  }
  const listeningMs = performance.now() - started;
  const after = schedstat();
  clearInterval(ticker);
  console.log(`${COUNT} launches: inside launchCommand ${insideMs.toFixed(1)} ms in all, ${worstInsideMs.toFixed(1)} ms the longest; first pid after ${firstPidMs!.toFixed(0)} ms, all spawned after ${spawnedMs.toFixed(0)} ms, all listening after ${listeningMs.toFixed(0)} ms; `
    + `main loop max gap ${maxGapMs.toFixed(1)} ms, gaps > 5 ms: ${gapsOver5}; main thread CPU ${(after.cpuMs - before.cpuMs).toFixed(0)} ms, run-queue wait ${(after.waitMs - before.waitMs).toFixed(0)} ms `
    + `(rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB, ballast ${ballast.length})`);
} finally {
  await Promise.all(launched.map((process) => process.stop(2000)));
  rmSync(dir, { recursive: true, force: true });
}
