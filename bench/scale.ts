// The scale a busy developer reaches: generated configs of 10, 100 and 1,000 services (every
// other one with a wildcard host besides its exact one, each with a `cwd` that exists and a
// `command`, none running), and for each: the CLI's start to listening, `check`, a reload that
// changes one service, RSS with none running, and sniff + route per head in-process. Every
// process is the real CLI, tracked by targets.ts; every loop is bounded in count and time.

import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../lib/config-file.js';
import { SETTLE_MS } from '../lib/config-watcher.js';
import { Router } from '../lib/router.js';
import { HeadSniffer } from '../lib/sniff.js';
import { BROWSER_HEAD } from './loads.js';
import type { ScalePoint, ScaleResults } from './results.js';
import { BENCH_HOST, exited, freePort, reply, rssOf, spawnNode } from './targets.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const cliPath = fileURLToPath(new URL('../bin/norikae-splice.js', import.meta.url));
const RELOAD_HOST = 'reload.localhost';

export interface ScaleOptions {
  sizes: number[];
  /** Runs of each timed step per size. */
  runs: number;
  sniffRounds: number;
  sniffIterations: number;
}

/** Every size in turn; `say` reports progress. */
export async function measureScale(upstreamPort: number, dir: string, options: ScaleOptions, say: (line: string) => void): Promise<ScaleResults> {
  const empty = join(dir, 'empty.js');
  writeFileSync(empty, '');
  const nodeStartMs: number[] = [];
  for (let i = 0; i < options.runs; i++) nodeStartMs.push(await timeToExit(empty, []));
  const points: ScalePoint[] = [];
  for (const services of options.sizes) {
    say(`scale: ${services} services`);
    const closedPort = await freePort();
    const file = writeScaleConfig(dir, services, upstreamPort, closedPort, false);
    const sniffRouteUs = sniffRouteMicrobench(file, services, options.sniffRounds, options.sniffIterations);
    const checkMs: number[] = [];
    for (let i = 0; i < options.runs; i++) checkMs.push(await timeToExit(cliPath, ['check', '--config', file]));
    const startMs: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      // As a user starts it: without the bench's memory probe, which only the run below needs.
      const running = await startCli(file, dir, false);
      startMs.push(running.startMs);
      await running.stop();
    }
    const running = await startCli(file, dir, true);
    try {
      // A few requests first, so the RSS includes the code paths of a spliced connection.
      for (let i = 0; i < 20; i++) await statusOf(running.port, BENCH_HOST, 5000);
      const memory = await running.memory();
      const rssBytes = rssOf(running.pid);
      const reloadMs: number[] = [];
      for (let i = 0; i < options.runs; i++) {
        const toUpstream = i % 2 === 0;
        reloadMs.push(await timeReload(running.port, () => writeScaleConfig(dir, services, upstreamPort, closedPort, toUpstream), toUpstream ? 200 : 502));
      }
      points.push({ services, startMs, checkMs, reloadMs, rssBytes, heapUsedBytes: memory.heapUsed, sniffRouteUs });
    } finally {
      await running.stop();
    }
  }
  return { points, nodeStartMs, settleMs: SETTLE_MS };
}

/**
 * A config of `count` services plus `bench` (BENCH_HOST → the upstream) and `reload`
 * (RELOAD_HOST → the upstream when `reloadToUpstream`, else a closed port: a 502).
 */
export function writeScaleConfig(dir: string, count: number, upstreamPort: number, closedPort: number, reloadToUpstream: boolean): string {
  const projects = join(dir, `projects-${count}`);
  const lines = [
    `log_dir = ${JSON.stringify(join(dir, 'logs'))}`,
    '',
    '[service.bench]',
    `host = "${BENCH_HOST}"`,
    `port = ${upstreamPort}`,
    '',
    '[service.reload]',
    `host = "${RELOAD_HOST}"`,
    `port = ${reloadToUpstream ? upstreamPort : closedPort}`,
  ];
  for (let i = 0; i < count; i++) {
    const name = `svc${i}`;
    mkdirSync(join(projects, name), { recursive: true });
    lines.push('', `[service.${name}]`);
    // Every other service also answers every subdomain of its name.
    if (i % 2 === 0) lines.push(`host = ["${name}.localhost", "*.${name}.localhost"]`);
    lines.push(`port = ${21000 + i}`, `cwd = ${JSON.stringify(join(projects, name))}`, 'command = "npm run dev"');
  }
  const file = join(dir, `scale-${count}.toml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

interface RunningCli {
  port: number;
  pid: number;
  startMs: number;
  memory(): Promise<NodeJS.MemoryUsage>;
  stop(): Promise<void>;
}

/**
 * The CLI on `file`, timed from the spawn to its "listening on" line. With bench/probe.ts
 * preloaded when `probe` (for `memory()`, and to exit with the bench): `--import` costs about
 * 30 ms of start here that a user never pays, so the timed starts go without it (run.ts's
 * stopAll ends them like every other target).
 */
async function startCli(file: string, dir: string, probe: boolean): Promise<RunningCli> {
  const nodeArgs = probe ? ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.js')).href] : [];
  const spawned = performance.now();
  const child = spawnNode(cliPath, ['--config', file, '--listen', '127.0.0.1:0'], nodeArgs, { XDG_STATE_HOME: join(dir, 'state'), DEBUG: '' });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`norikae did not start listening within 20 s:\n${child.output()}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`norikae exited (${code}) before listening:\n${child.output()}`)));
    child.stderr!.on('data', () => {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.output());
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  const startMs = performance.now() - spawned;
  return {
    port, pid: child.pid!, startMs,
    memory: probe ? () => reply<NodeJS.MemoryUsage>(child, 'memory', 'memory', 10_000) : () => Promise.reject(new Error('started without the memory probe')),
    stop: async () => {
      child.kill('SIGTERM');
      await exited(child, 10_000);
    },
  };
}

/** A node script under the same shell wrapper as the CLI, timed from the spawn to its exit. */
async function timeToExit(script: string, args: string[]): Promise<number> {
  const spawned = performance.now();
  const child = spawnNode(script, args, []);
  const code = await exited(child, 20_000);
  if (code !== 0) throw new Error(`${script} ${args.join(' ')} exited ${code}:\n${child.output()}`);
  return performance.now() - spawned;
}

/**
 * Writes an edit of one service and asks RELOAD_HOST every millisecond until it answers `status`:
 * the time from the write to that answer, less the watcher's settle delay, is the reload's own.
 * The clock starts once the file is written: making the edit (the config's text, and a folder
 * for each of its services) took 10-30 ms of what was timed before, and is not the reload's.
 */
async function timeReload(port: number, write: () => void, status: number): Promise<number> {
  write();
  const written = performance.now();
  const deadline = written + 10_000;
  for (;;) {
    if (await statusOf(port, RELOAD_HOST, 2000) === status) return performance.now() - written - SETTLE_MS;
    if (performance.now() > deadline) throw new Error(`the reload did not apply within 10 s (${RELOAD_HOST} never answered ${status})`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** The status of one GET on its own connection, after its body has arrived. */
function statusOf(port: number, host: string, limitMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { Host: host }, agent: false, timeout: limitMs }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error(`${host}: no answer within ${limitMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/**
 * What the server does per connection before it dials, with `count` services configured: a new
 * HeadSniffer, one push of a browser head, and Router.route of its host. The heads alternate
 * between an exact host, a wildcard one (two labels deep) and an unknown one, of the last services.
 */
export function sniffRouteMicrobench(file: string, count: number, rounds: number, iterations: number): number[] {
  const router = new Router(loadConfig(file).services);
  const evenLast = (count - 1) - ((count - 1) % 2);
  const hosts = [`svc${count - 1}.localhost`, `a.b.svc${evenLast}.localhost`, 'nothing.localhost'];
  const heads = hosts.map((host) => Buffer.from(BROWSER_HEAD.toString('latin1').replace('Host: app.localhost:8080', `Host: ${host}:8080`), 'latin1'));
  const expected = [`svc${count - 1}`, `svc${evenLast}`, undefined];
  const once = (i: number): void => {
    const which = i % 3;
    const result = new HeadSniffer(16 * 1024).push(heads[which]!);
    if (result?.kind !== 'http') throw new Error(`the bench head did not sniff as http: ${JSON.stringify(result)}`);
    if (router.route(result.host)?.name !== expected[which]) throw new Error(`${result.host} routed wrong`);
  };
  for (let i = 0; i < iterations; i++) once(i);
  const roundsUs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) once(i);
    roundsUs.push(Number(process.hrtime.bigint() - start) / 1000 / iterations);
  }
  return roundsUs;
}
