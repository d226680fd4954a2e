// The bench's "20 cold services at once" alone, for work on launches: ROUNDS times, a fresh
// norikae (the real CLI) with 20 cold services, all asked for at once (coldStartConcurrent), then
// the floor (coldStartDirectConcurrent); and norikae's main-thread event-loop block during the
// launches (bench/loop-probe.ts), which other load on the machine disturbs less than the timings.
// Usage: node dist/bench/cold-concurrent.js [ROUNDS]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { coldStartConcurrent, coldStartDirectConcurrent } from './loads.js';
import { overheadOverFloor } from './results.js';
import { freeLowPort, startNorikae, startUpstream, stopAll, type ColdService } from './targets.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const COUNT = 20;
const loopProbe = pathToFileURL(fileURLToPath(new URL('loop-probe.js', import.meta.url))).href;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function round(upstreamPort: number, index: number): Promise<{ worstOver: number; maxGapMs: number; delayMaxMs: number; gapsOver5: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'norikae-cold-'));
  try {
    const cold: ColdService[] = [];
    for (let i = 0; i < COUNT; i++) cold.push({ name: `cold${i}`, port: await freeLowPort(), stampFile: join(dir, `cold${i}.stamp`) });
    const norikae = await startNorikae(upstreamPort, dir, cold, ['--import', loopProbe, ...(process.env.PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF}`] : [])]);
    await norikae.ask('loop-start', 'loop-started', 5000);
    const trials = await coldStartConcurrent(norikae.port, cold.map((s) => ({ host: `${s.name}.localhost`, stampFile: s.stampFile })), 30_000);
    const loop = await norikae.ask<{ maxGapMs: number; delayMaxMs: number; gapsOver5: number; gaps: [number, number][] }>('loop-stop', 'loop', 5000);
    await stopAll();
    const ports: number[] = [];
    for (let i = 0; i < COUNT; i++) ports.push(await freeLowPort());
    const direct = await coldStartDirectConcurrent(ports, ports.map((_, i) => join(dir, `direct${i}.stamp`)), 30_000);
    const over = overheadOverFloor(trials, direct);
    const result = { worstOver: Math.max(...over), maxGapMs: loop.maxGapMs, delayMaxMs: loop.delayMaxMs, gapsOver5: loop.gapsOver5 };
    console.log(`round ${index}: worst over floor ${result.worstOver.toFixed(1)} ms; norikae worst ${Math.max(...trials.map((t) => t.overheadMs)).toFixed(1)} ms, floor worst ${Math.max(...direct.map((t) => t.overheadMs)).toFixed(1)} ms; `
      + `main loop: max gap ${loop.maxGapMs.toFixed(1)} ms, max delay ${loop.delayMaxMs.toFixed(1)} ms, gaps > 5 ms: ${loop.gapsOver5}`);
    if (process.env.GAPS) console.log(`  gaps > 5 ms [at, ms]: ${JSON.stringify(loop.gaps)}`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
const results = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const upstream = await startUpstream();
    results.push(await round(upstream.port, i));
    await stopAll();
  }
} finally {
  await stopAll();
}
console.log(`median of ${ROUNDS}: worst over floor ${median(results.map((r) => r.worstOver)).toFixed(1)} ms; `
  + `main loop max gap ${median(results.map((r) => r.maxGapMs)).toFixed(1)} ms, max delay ${median(results.map((r) => r.delayMaxMs)).toFixed(1)} ms, gaps > 5 ms ${median(results.map((r) => r.gapsOver5))}`);
