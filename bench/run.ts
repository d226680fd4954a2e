// `npm run bench`: starts the upstream; norikae-splice (its real CLI); the splicers it is measured
// against, haproxy in `mode tcp` (when installed) and node-floor (the naive Node `net` + `pipe`
// splicer); and the tools a user would pick instead, portless, http-proxy and Caddy (when
// installed). Measures them in interleaved rounds (direct, norikae, haproxy, node-floor, portless,
// http-proxy, caddy, direct, …), then HTTPS (bench/tls.ts: norikae, haproxy and a Node floor
// terminating TLS), cold starts and the scale runs (bench/scale.ts); writes
// bench/results/<date>.json and latest.json, then docs/benchmarks.md and docs/benchmarks.svg.
// `--quick` (or BENCH_QUICK=1): one short round of each, fewer idle connections and scale runs,
// for development; its numbers are not the page's. Knobs (environment): BENCH_ROUNDS (3),
// BENCH_SECONDS per run (2), BENCH_HAPROXY_THREADS (1), BENCH_CADDY_GOMAXPROCS (1), BENCH_TOOLS=wrk,
// BENCH_CPU_PROF=1 (norikae writes a --cpu-prof profile to bench/results/profiles/).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  coldStartConcurrent, coldStartDirect, coldStartDirectConcurrent, coldStartTrial, measureThroughput, openIdleConnections,
  sniffMicrobench, websocketRoundTrips, type LoadSpec,
} from './loads.js';
import { npmVersion, startCaddy, startHttpProxy, startPortless } from './peers.js';
import { writeReport } from './report.js';
import { checks, type BenchResults, type ColdStartTiming, type IdleMemory, type LatencySample, type Machine, type TargetName, type ThroughputLoad } from './results.js';
import { measureScale } from './scale.js';
import { measureTls } from './tls.js';
import { fdCount, freeLowPort, rssOf, startHaproxy, startNodeFloor, startNorikae, startUpstream, stopAll, type ColdService } from './targets.js';

const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const ROUNDS = envInteger('BENCH_ROUNDS', QUICK ? 1 : 3);
const SECONDS = envInteger('BENCH_SECONDS', QUICK ? 1 : 2);
const HAPROXY_THREADS = envInteger('BENCH_HAPROXY_THREADS', 1);
const CADDY_MAX_PROCS = envInteger('BENCH_CADDY_GOMAXPROCS', 1);
const IDLE_CONNECTIONS = QUICK ? 1000 : 10_000;
const COLD_TRIALS = QUICK ? 2 : 5;
const CONCURRENT_COLD = 20;
const WS_MESSAGES = QUICK ? 1000 : 5000;
const SCALE = { sizes: [10, 100, 1000], runs: QUICK ? 2 : 5, sniffRounds: QUICK ? 5 : 15, sniffIterations: QUICK ? 5000 : 20_000 };

const LOADS: (Omit<LoadSpec, 'tool' | 'seconds'> & { kind: string; title: string })[] = [
  { kind: 'keepalive-1', title: 'keep-alive, 1 connection', connections: 1, path: '/', newConnectionPerRequest: false, unit: 'req/s' },
  { kind: 'keepalive-50', title: 'keep-alive, 50 connections', connections: 50, path: '/', newConnectionPerRequest: false, unit: 'req/s' },
  { kind: 'new-connection', title: 'new connection per request, 8 at once', connections: 8, path: '/', newConnectionPerRequest: true, unit: 'req/s' },
  { kind: '1mib', title: '1 MiB responses, 4 connections', connections: 4, path: '/1mib', newConnectionPerRequest: false, unit: 'MiB/s' },
];

const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const workDir = mkdtempSync(join(tmpdir(), 'norikae-bench-'));

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    say(`${signal}: stopping the bench's processes`);
    void stopAll().finally(() => {
      rmSync(workDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

try {
  const results = await bench();
  mkdirSync(resultsDir, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  if (QUICK) {
    // A development run: kept apart, and the page is not rewritten from it.
    writeFileSync(join(resultsDir, 'quick.json'), json);
    say(`\nwrote bench/results/quick.json in ${results.durationSeconds.toFixed(0)} s (render it: node dist/bench/report.js bench/results/quick.json)\n`);
  } else {
    const stamp = results.date.slice(0, 19).replace(/:/g, '-');
    writeFileSync(join(resultsDir, `${stamp}.json`), json);
    writeFileSync(join(resultsDir, 'latest.json'), json);
    const written = writeReport(results, `bench/results/${stamp}.json`);
    say(`\nwrote bench/results/${stamp}.json, bench/results/latest.json, ${written.join(', ')} in ${results.durationSeconds.toFixed(0)} s\n`);
  }
  for (const check of checks(results)) {
    const mark = check.pass === undefined ? (check.goal === 'reference' ? 'ref ' : 'n/a ') : check.pass ? 'pass' : 'MISS';
    say(`${mark}  ${check.what}: ${check.shown} (goal ${check.goal})`);
  }
} catch (err) {
  process.exitCode = 1;
  say(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  await stopAll();
  rmSync(workDir, { recursive: true, force: true });
}

async function bench(): Promise<BenchResults> {
  const started = Date.now();
  const startLoad = loadavg()[0]!;
  const machine = describeMachine();
  say(`${machine.cpu}, ${machine.cores} cores, node ${machine.node}, haproxy ${machine.haproxy ?? 'not installed'}, wrk ${machine.wrk ?? 'not installed'}, ` +
    `portless ${machine.peers?.portless}, http-proxy ${machine.peers?.['http-proxy']}, caddy ${machine.peers?.caddy ?? 'not installed'}, ` +
    `load average ${startLoad.toFixed(2)}${QUICK ? ' (--quick: not the numbers of the page)' : ''}`);

  // First, while nothing else runs.
  say('head sniffer microbenchmark');
  // Many short rounds: this VM's speed comes and goes (a neighbour's load), and a median of many is steadier.
  const sniff = sniffMicrobench(SCALE.sniffRounds, SCALE.sniffIterations);

  // 2 descriptors per spliced connection, and some for the process itself (haproxy refuses to
  // start when 2 × maxconn + its own do not fit under the limit).
  const idleCount = Math.min(IDLE_CONNECTIONS, Math.floor((machine.fdHardLimit - 100) / 2));
  const limitNote = idleCount < IDLE_CONNECTIONS
    ? `${idleCount} instead of ${IDLE_CONNECTIONS}: the hard limit on open files here is ${machine.fdHardLimit} and a spliced connection holds 2 descriptors`
    : undefined;

  const upstream = await startUpstream();
  const cold: ColdService[] = [];
  for (let i = 0; i < COLD_TRIALS + CONCURRENT_COLD; i++) cold.push({ name: `cold${i}`, port: await freeLowPort(), stampFile: join(workDir, `cold${i}.stamp`) });
  const profileArgs = process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', `--cpu-prof-dir=${join(resultsDir, 'profiles')}`] : [];
  const norikae = await startNorikae(upstream.port, workDir, cold, profileArgs);
  const haproxy = machine.haproxy === undefined
    ? undefined
    : await startHaproxy(upstream.port, workDir, { maxconn: idleCount + 16, threads: HAPROXY_THREADS });
  const nodeFloor = await startNodeFloor(upstream.port);
  const portless = await startPortless(upstream.port, workDir);
  const httpProxy = await startHttpProxy(upstream.port);
  const caddy = machine.peers?.caddy === undefined ? undefined : await startCaddy(upstream.port, workDir, { maxProcs: CADDY_MAX_PROCS });
  const targets: { name: TargetName; port: number; pid: number | undefined; heapUsed?: () => Promise<number> }[] = [
    { name: 'direct', port: upstream.port, pid: undefined },
    { name: 'norikae', port: norikae.port, pid: norikae.pid, heapUsed: async () => (await norikae.memory()).heapUsed },
    ...(haproxy ? [{ name: 'haproxy' as const, port: haproxy.port, pid: haproxy.pid }] : []),
    { name: 'node-floor', port: nodeFloor.port, pid: nodeFloor.pid, heapUsed: async () => (await nodeFloor.memory()).heapUsed },
    { name: 'portless', port: portless.port, pid: portless.pid, heapUsed: async () => (await portless.memory!()).heapUsed },
    { name: 'http-proxy', port: httpProxy.port, pid: httpProxy.pid, heapUsed: async () => (await httpProxy.memory!()).heapUsed },
    ...(caddy ? [{ name: 'caddy' as const, port: caddy.port, pid: caddy.pid }] : []),
  ];
  // Quick runs take the judged tool only.
  // BENCH_TOOLS=wrk leaves autocannon out (quick runs do): wrk's numbers are the judged ones.
  const wrkOnly = QUICK || process.env.BENCH_TOOLS === 'wrk';
  const tools = machine.wrk === undefined ? (['autocannon'] as const) : wrkOnly ? (['wrk'] as const) : (['wrk', 'autocannon'] as const);

  say('warm-up');
  for (const target of targets) {
    for (const load of [LOADS[1]!, LOADS[2]!]) {
      await measureThroughput({ ...load, tool: tools[0], seconds: 1 }, target.port, target.pid, upstream, workDir);
    }
  }

  const throughput: ThroughputLoad[] = [];
  for (const load of LOADS) {
    for (const tool of tools) {
      const entry: ThroughputLoad = {
        id: `${load.kind}/${tool}`, title: load.title, tool, connections: load.connections,
        newConnectionPerRequest: load.newConnectionPerRequest, unit: load.unit, rounds: {},
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (const target of targets) {
          const sample = await measureThroughput({ ...load, tool, seconds: SECONDS }, target.port, target.pid, upstream, workDir);
          (entry.rounds[target.name] ??= []).push(sample);
          say(`${entry.id} round ${round + 1} ${target.name}: ${sample.value.toFixed(load.unit === 'MiB/s' ? 1 : 0)} ${load.unit}${sample.errors ? ` (${sample.errors} errors)` : ''}`);
        }
      }
      throughput.push(entry);
    }
  }

  // HTTPS: its own servers (norikae with a local CA of its own, haproxy and the Node floor terminating TLS).
  say('HTTPS');
  const tls = await measureTls(upstream, workDir, {
    rounds: ROUNDS, seconds: SECONDS, tool: tools[0], haproxyThreads: machine.haproxy === undefined ? undefined : HAPROXY_THREADS,
    forwardedRounds: SCALE.sniffRounds, forwardedHeads: SCALE.sniffIterations,
  }, say);

  say('WebSocket echo');
  const websocket: Partial<Record<TargetName, LatencySample[]>> = {};
  /** A peer that drops a WebSocket must not end the run: its failure is recorded, once per target. */
  const failures: Partial<Record<TargetName, string>> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) {
      let sample: LatencySample;
      try {
        sample = await websocketRoundTrips(target.port, WS_MESSAGES, 200, 30_000);
      } catch (err) {
        say(`WebSocket echo through ${target.name} failed: ${(err as Error).message}`);
        failures[target.name] ??= `WebSocket echo: ${(err as Error).message}`;
        // Not a number: JSON keeps it as null, which the report reads as "not measured".
        sample = { p50Us: Number.NaN, p99Us: Number.NaN };
      }
      (websocket[target.name] ??= []).push(sample);
    }
  }

  say('cold start');
  const coldTrials: ColdStartTiming[] = [];
  const coldDirect: ColdStartTiming[] = [];
  for (const [i, service] of cold.slice(0, COLD_TRIALS).entries()) {
    coldTrials.push(await coldStartTrial(norikae.port, `${service.name}.localhost`, service.stampFile, 10_000));
    coldDirect.push(await coldStartDirect(await freeLowPort(), join(workDir, `direct${i}.stamp`), 10_000));
  }
  say(`${CONCURRENT_COLD} cold starts at once`);
  const concurrentServices = cold.slice(COLD_TRIALS).map((service) => ({ host: `${service.name}.localhost`, stampFile: service.stampFile }));
  const concurrentTrials = await coldStartConcurrent(norikae.port, concurrentServices, 30_000);
  const directPorts: number[] = [];
  for (let i = 0; i < CONCURRENT_COLD; i++) directPorts.push(await freeLowPort());
  const concurrentDirect = await coldStartDirectConcurrent(directPorts, directPorts.map((_, i) => join(workDir, `direct-concurrent${i}.stamp`)), 30_000);

  const idle: Partial<Record<TargetName, IdleMemory>> = {};
  for (const target of targets) {
    if (target.pid === undefined) continue;
    say(`${idleCount} idle connections through ${target.name}`);
    try {
      idle[target.name] = await idleMemory(target.port, target.pid, idleCount, target.heapUsed);
    } catch (err) {
      say(`idle connections through ${target.name} failed: ${(err as Error).message}`);
      if (target.name === 'norikae') throw err;
      failures[target.name] ??= `idle connections: ${(err as Error).message.split('\n')[0]}`;
    }
  }

  say('scale');
  const scale = await measureScale(upstream.port, workDir, SCALE, say);

  return {
    version: 2,
    date: new Date(started).toISOString(),
    durationSeconds: (Date.now() - started) / 1000,
    machine,
    loadAverage: [startLoad, loadavg()[0]!],
    settings: { rounds: ROUNDS, secondsPerRun: SECONDS, haproxyThreads: HAPROXY_THREADS, caddyMaxProcs: CADDY_MAX_PROCS, quick: QUICK },
    targets: targets.map((target) => target.name),
    sniff,
    throughput,
    websocket: { messageBytes: 32, messagesPerRound: WS_MESSAGES, rounds: websocket },
    idle: { requested: IDLE_CONNECTIONS, limitNote, norikae: idle.norikae!, haproxy: idle.haproxy, nodeFloor: idle['node-floor'], byTarget: idle },
    coldStart: { trials: coldTrials, direct: coldDirect, concurrent: { count: CONCURRENT_COLD, trials: concurrentTrials, direct: concurrentDirect } },
    scale,
    failures,
    tls,
  };
}

/**
 * RSS and descriptors of `pid` before and with `count` idle spliced connections. `heapUsed`
 * (the Node processes only) forces a GC, so "before" is read after one and "after" before one: the
 * per-connection figure includes whatever garbage opening the connections left.
 */
async function idleMemory(port: number, pid: number, count: number, heapUsed?: () => Promise<number>): Promise<IdleMemory> {
  const heapUsedBefore = await heapUsed?.();
  await delay(300);
  const rssBefore = rssOf(pid);
  const fdsBefore = fdCount(pid);
  const clients = await openIdleConnections(port, count, 120_000);
  try {
    await delay(1000);
    const rssAfter = rssOf(pid);
    const fdsAfter = fdCount(pid);
    const heapUsedAfter = await heapUsed?.();
    return {
      connections: clients.opened, rssBefore, rssAfter, rssAfterGc: heapUsed === undefined ? undefined : rssOf(pid),
      heapUsedBefore, heapUsedAfter, fdsBefore, fdsAfter,
    };
  } finally {
    await clients.close();
  }
}

function describeMachine(): Machine {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  const haproxy = installed('haproxy') ? /version (\S+)/.exec(commandOutput('haproxy', ['-v']))?.[1] ?? 'unknown' : undefined;
  const wrk = installed('wrk') ? /^wrk (\S+)/m.exec(commandOutput('wrk', ['--version']))?.[1] ?? 'unknown' : undefined;
  const caddy = installed('caddy') ? /^v?(\S+)/.exec(commandOutput('caddy', ['version']).trim())?.[1] ?? 'unknown' : undefined;
  return {
    cpu, cores: availableParallelism(), node: process.version, kernel: release(), haproxy, wrk,
    peers: { portless: npmVersion('portless'), 'http-proxy': npmVersion('http-proxy'), ...(caddy === undefined ? {} : { caddy }) },
    fdHardLimit: Number(commandOutput('sh', ['-c', 'ulimit -Hn']).trim()) || 1024,
  };
}

function installed(command: string): boolean {
  return commandOutput('sh', ['-c', `command -v ${command} || true`]).trim() !== '';
}

/** stdout+stderr of a short command, whatever its exit code (`wrk --version` exits 1). */
function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    return `${stdout ?? ''}${stderr ?? ''}`;
  }
}

function envInteger(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}
