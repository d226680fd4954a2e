// The measurements, one function each. Load generators (wrk, autocannon) and the idle clients run
// as child processes so they never share an event loop with what they measure; the WebSocket
// ping-pong and the cold-start request run here, in the otherwise idle bench process, and cost
// every target the same. Every loop is bounded in count and in time.

import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { HeadSniffer } from '../lib/sniff.js';
import { percentile, type ColdStartTiming, type LatencySample, type RunSample } from './results.js';
import { BENCH_HOST, cpuOf, exited, spawnNode, spawnTracked, type Upstream } from './targets.js';

export interface LoadSpec {
  tool: 'wrk' | 'autocannon';
  connections: number;
  seconds: number;
  path: string;
  newConnectionPerRequest: boolean;
  unit: 'req/s' | 'MiB/s';
  /**
   * HTTPS to `https://localhost:PORT` (bench/tls.ts): `localhost` is the one name that resolves
   * here, so wrk sends it as SNI; no Host header is added (the URL's is the right one).
   */
  https?: boolean;
}

/** What a load generator reports about one run: the part of a RunSample it measures itself. */
type ToolResult = Pick<RunSample, 'requests' | 'bytes' | 'seconds' | 'errors' | 'latencyP50Us' | 'latencyP99Us'>;

/**
 * One run of `spec` against `port`, with what the upstream accepted meanwhile (≈ requests when
 * every request had its own connection) and the proxy's CPU per request from /proc.
 */
export async function measureThroughput(spec: LoadSpec, port: number, proxyPid: number | undefined, upstream: Upstream, dir: string): Promise<RunSample> {
  const acceptsBefore = await upstream.accepts();
  const cpuBefore = proxyPid === undefined ? undefined : cpuOf(proxyPid);
  const run = spec.tool === 'wrk' ? await runWrk(spec, port, dir) : await runAutocannon(spec, port);
  const cpuAfter = proxyPid === undefined ? undefined : cpuOf(proxyPid);
  const upstreamAccepts = (await upstream.accepts()) - acceptsBefore;
  const perRequest = (before: number | undefined, after: number | undefined): number | undefined =>
    before === undefined || after === undefined || run.requests === 0 ? undefined : (after - before) / run.requests;
  return {
    value: spec.unit === 'MiB/s' ? run.bytes / run.seconds / 2 ** 20 : run.requests / run.seconds,
    ...run,
    upstreamAccepts,
    proxyUserUsPerRequest: perRequest(cpuBefore?.userUs, cpuAfter?.userUs),
    proxySysUsPerRequest: perRequest(cpuBefore?.sysUs, cpuAfter?.sysUs),
  };
}

/** wrk prints its summary for people; this script makes it print one JSON line instead. */
const WRK_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"durationUs":%d,"errors":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

async function runWrk(spec: LoadSpec, port: number, dir: string): Promise<ToolResult> {
  const script = join(dir, 'wrk-json.lua');
  writeFileSync(script, WRK_SCRIPT);
  const child = spawnTracked('wrk', [
    '-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '-s', script, ...(spec.https ? [] : ['-H', `Host: ${BENCH_HOST}`]),
    // The upstream then closes after its answer and wrk reconnects: one connection per request.
    ...(spec.newConnectionPerRequest ? ['-H', 'Connection: close'] : []),
    spec.https ? `https://localhost:${port}${spec.path}` : `http://127.0.0.1:${port}${spec.path}`,
  ]);
  const code = await exited(child, (spec.seconds + 15) * 1000);
  const line = /^WRKJSON (.*)$/m.exec(child.output());
  if (code !== 0 || !line) throw new Error(`wrk failed (${code}):\n${child.output()}`);
  const out = JSON.parse(line[1]!) as { requests: number; bytes: number; durationUs: number; errors: number; p50: number; p99: number };
  return { requests: out.requests, bytes: out.bytes, seconds: out.durationUs / 1e6, errors: out.errors, latencyP50Us: out.p50, latencyP99Us: out.p99 };
}

const autocannonCli = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

async function runAutocannon(spec: LoadSpec, port: number): Promise<ToolResult> {
  const child = spawnTracked(process.execPath, [
    autocannonCli, '-c', String(spec.connections), '-d', String(spec.seconds), '-j', '-n', ...(spec.https ? [] : ['-H', `host=${BENCH_HOST}`]),
    // autocannon reconnects when the server closes: the upstream's accept count confirms it.
    ...(spec.newConnectionPerRequest ? ['-H', 'connection=close'] : []),
    // Its SNI is the URL's host name; it does not verify the certificate.
    spec.https ? `https://localhost:${port}${spec.path}` : `http://127.0.0.1:${port}${spec.path}`,
  ]);
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  const code = await exited(child, (spec.seconds + 15) * 1000);
  const json = stdout.split('\n').find((line) => line.startsWith('{'));
  if (code !== 0 || json === undefined) throw new Error(`autocannon failed (${code}):\n${child.output()}`);
  const out = JSON.parse(json) as {
    requests: { total: number }; throughput: { total: number }; duration: number;
    errors: number; timeouts: number; non2xx: number; latency: { p50: number; p99: number };
  };
  return {
    requests: out.requests.total,
    bytes: out.throughput.total,
    seconds: out.duration,
    errors: out.errors + out.timeouts + out.non2xx,
    latencyP50Us: out.latency.p50 * 1000,
    latencyP99Us: out.latency.p99 * 1000,
  };
}

/** `messages` 32-byte echoes one after the other on one WebSocket, after `warmup` unrecorded ones. */
export async function websocketRoundTrips(port: number, messages: number, warmup: number, limitMs: number): Promise<LatencySample> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Host: BENCH_HOST }, perMessageDeflate: false });
  const guard = setTimeout(() => ws.terminate(), limitMs);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    let pending: ((err?: Error) => void) | undefined;
    ws.on('message', () => pending?.());
    ws.on('close', () => pending?.(new Error(`the WebSocket closed (time limit ${limitMs} ms?)`)));
    const payload = Buffer.alloc(32, 0x61);
    const times: number[] = [];
    for (let i = 0; i < warmup + messages; i++) {
      const start = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        pending = (err) => (err ? reject(err) : resolve());
        ws.send(payload);
      });
      if (i >= warmup) times.push(Number(process.hrtime.bigint() - start) / 1000);
    }
    return { p50Us: percentile(times, 50), p99Us: percentile(times, 99) };
  } finally {
    clearTimeout(guard);
    ws.terminate();
  }
}

/** Idle keep-alive connections held by a child process (bench/idle-clients.ts). */
export interface IdleClients {
  opened: number;
  /** Resets every connection (no TIME_WAIT left behind) and ends the child. */
  close(): Promise<void>;
}

/** Opens `count` connections that each complete one request through `port`, then sit idle. */
export async function openIdleConnections(port: number, count: number, limitMs: number): Promise<IdleClients> {
  const script = fileURLToPath(new URL('idle-clients.js', import.meta.url));
  const child = spawnNode(script, [String(port), String(count), BENCH_HOST], []);
  const opened = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`idle clients: not open within ${limitMs} ms:\n${child.output()}`)), limitMs);
    child.once('exit', (code) => reject(new Error(`idle clients exited (${code}):\n${child.output()}`)));
    child.on('message', (message: { type: string; opened: number; failed: number; firstError?: string }) => {
      if (message.type !== 'opened') return;
      clearTimeout(timer);
      if (message.failed > 0) reject(new Error(`idle clients: ${message.failed} of ${count} failed (${message.firstError})`));
      else resolve(message.opened);
    });
  });
  return {
    opened,
    close: async () => {
      child.send('close');
      await exited(child, 10_000);
    },
  };
}

/** A wall-clock time in ms with sub-millisecond precision, comparable across processes. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * One cold start through norikae: a request for a service that is not running, so norikae
 * launches its command. The service writes when it started accepting (cold-server.ts).
 */
export async function coldStartTrial(port: number, host: string, stampFile: string, limitMs: number): Promise<ColdStartTiming> {
  const sent = now();
  await getOnce(port, host, limitMs);
  const answered = now();
  const listening = Number(readFileSync(stampFile, 'utf8'));
  return { overheadMs: answered - listening, launchToListenMs: listening - sent };
}

/**
 * The floor for the same thing without norikae: we start the server ourselves and retry every
 * millisecond until it answers. What is left is the fresh server's own first response.
 */
export async function coldStartDirect(port: number, stampFile: string, limitMs: number): Promise<ColdStartTiming> {
  const server = fileURLToPath(new URL('cold-server.js', import.meta.url));
  const started = now();
  const child = spawnTracked(process.execPath, [server, String(port), stampFile]);
  try {
    for (;;) {
      try {
        await getOnce(port, 'cold.localhost', limitMs);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || now() - started > limitMs) throw err;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    const answered = now();
    const listening = Number(readFileSync(stampFile, 'utf8'));
    return { overheadMs: answered - listening, launchToListenMs: listening - started };
  } finally {
    child.kill('SIGTERM');
    await exited(child, 5000).catch(() => undefined);
  }
}

/** `services` cold services asked for at once through norikae, each on its own connection. */
export async function coldStartConcurrent(port: number, services: readonly { host: string; stampFile: string }[], limitMs: number): Promise<ColdStartTiming[]> {
  return Promise.all(services.map((service) => coldStartTrial(port, service.host, service.stampFile, limitMs)));
}

/** The floor of coldStartConcurrent: the same servers started at once by the bench, each asked every millisecond. */
export async function coldStartDirectConcurrent(ports: readonly number[], stampFiles: readonly string[], limitMs: number): Promise<ColdStartTiming[]> {
  return Promise.all(ports.map((port, i) => coldStartDirect(port, stampFiles[i]!, limitMs)));
}

/** One GET with its own connection; resolves when the whole 200 response has arrived. */
function getOnce(port: number, host: string, limitMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { Host: host }, agent: false, timeout: limitMs }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${host}: status ${res.statusCode}`))));
    });
    req.once('timeout', () => req.destroy(new Error(`${host}: no answer within ${limitMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** A typical Chrome request head for a script on a dev server, ~800 bytes. */
export const BROWSER_HEAD = Buffer.from([
  'GET /src/components/App.tsx?t=1718000000000 HTTP/1.1',
  'Host: app.localhost:8080',
  'Connection: keep-alive',
  'sec-ch-ua: "Google Chrome";v="125", "Chromium";v="125", "Not.A/Brand";v="24"',
  'sec-ch-ua-mobile: ?0',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36',
  'sec-ch-ua-platform: "Linux"',
  'Accept: */*',
  'Origin: http://app.localhost:8080',
  'Sec-Fetch-Site: same-origin',
  'Sec-Fetch-Mode: cors',
  'Sec-Fetch-Dest: script',
  'Referer: http://app.localhost:8080/settings/profile',
  'Accept-Encoding: gzip, deflate, br, zstd',
  'Accept-Language: en-US,en;q=0.9,ja;q=0.8',
  'Cookie: session=8f14e45fceea167a5a36dedd4bea2543b6f0a2d1; theme=dark; _ga=GA1.1.1234567890.1718000000; csrftoken=Zx9qLmN3vB7tR2wY5kP8sD4fG6hJ1aQ0',
  '', '',
].join('\r\n'));

/**
 * HeadSniffer per head, as the server uses it: a new sniffer per connection, one push of the
 * whole head. `rounds` timed batches of `iterations` after one untimed warm-up batch.
 */
export function sniffMicrobench(rounds: number, iterations: number): { headBytes: number; iterations: number; roundsUs: number[] } {
  const once = (): void => {
    const result = new HeadSniffer(16 * 1024).push(BROWSER_HEAD);
    if (result?.kind !== 'http') throw new Error(`the bench head did not sniff as http: ${JSON.stringify(result)}`);
  };
  for (let i = 0; i < iterations; i++) once();
  const roundsUs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) once();
    roundsUs.push(Number(process.hrtime.bigint() - start) / 1000 / iterations);
  }
  return { headBytes: BROWSER_HEAD.length, iterations, roundsUs };
}
