// The HTTPS section of `npm run bench`: keep-alive requests and new TLS handshakes through
// norikae terminating TLS (its own local CA, in a temporary XDG_DATA_HOME), haproxy terminating
// TLS (`mode tcp` with `bind … ssl crt`, the SAME certificate and key as norikae's leaf) and a
// bare Node `tls.Server` + `pipe` floor (bench/tls-floor.ts, same certificate), interleaved in
// rounds; plus the microbenchmark of the forwarded-header rewriter (lib/forwarded.ts).
// The name is `localhost`: the one name that resolves on a machine without `*.localhost` in its
// resolver, so wrk (which takes both the address and the SNI from its URL) sends SNI `localhost`
// and norikae routes the ClientHello by it. The clients do not verify certificates (wrk does not).

import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ForwardedHeaders } from '../lib/forwarded.js';
import { BROWSER_HEAD, measureThroughput } from './loads.js';
import type { TlsLoad, TlsResults, TlsTarget } from './results.js';
import { accepts, cliPath, exited, freePort, reply, spawnNode, spawnTracked, type Upstream } from './targets.js';

/** The SNI name and the service's host: it must resolve to 127.0.0.1 for wrk. */
export const TLS_HOST = 'localhost';

const LOADS = [
  { kind: 'tls-keepalive-50', title: 'HTTPS keep-alive, 50 connections', connections: 50, newConnectionPerRequest: false },
  { kind: 'tls-new-connection', title: 'HTTPS, a new TLS handshake per request, 8 at once', connections: 8, newConnectionPerRequest: true },
] as const;

const here = fileURLToPath(new URL('.', import.meta.url));

export interface TlsOptions {
  rounds: number;
  seconds: number;
  tool: 'wrk' | 'autocannon';
  /** haproxy's thread count, or undefined when it is not installed. */
  haproxyThreads: number | undefined;
  forwardedRounds: number;
  forwardedHeads: number;
}

/** Starts the three TLS servers in `dir`, measures them in interleaved rounds; run.ts's stopAll() ends them. */
export async function measureTls(upstream: Upstream, dir: string, options: TlsOptions, say: (line: string) => void): Promise<TlsResults> {
  say('forwarded-header rewriter microbenchmark');
  const forwarded = await forwardedMicrobench(options.forwardedRounds, options.forwardedHeads);
  const norikae = await startNorikaeTls(upstream.port, dir);
  const leafFile = join(dir, 'tls-data', 'norikae', 'leaves', `${TLS_HOST}.pem`);
  const servers: { name: TlsTarget; port: number; pid: number; child: ChildProcess }[] = [{ name: 'norikae', ...norikae }];
  try {
    return await measureServers(upstream, dir, options, say, servers, leafFile, forwarded);
  } finally {
    // Not left running through the rest of the bench (its idle connections and memory figures).
    await Promise.all(servers.map(({ child }) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited(child, 5000).catch(() => undefined);
    }));
  }
}

async function measureServers(
  upstream: Upstream, dir: string, options: TlsOptions, say: (line: string) => void,
  servers: { name: TlsTarget; port: number; pid: number; child: ChildProcess }[], leafFile: string, forwarded: TlsResults['forwarded'],
): Promise<TlsResults> {
  if (options.haproxyThreads !== undefined) servers.push({ name: 'haproxy', ...await startHaproxyTls(upstream.port, dir, leafFile, options.haproxyThreads) });
  servers.push({ name: 'tls-floor', ...await startTlsFloor(upstream.port, leafFile) });

  const spec = (load: (typeof LOADS)[number], seconds: number) =>
    ({ tool: options.tool, connections: load.connections, seconds, path: '/', newConnectionPerRequest: load.newConnectionPerRequest, unit: 'req/s', https: true }) as const;
  say('HTTPS warm-up');
  for (const server of servers) for (const load of LOADS) await measureThroughput(spec(load, 1), server.port, server.pid, upstream, dir);
  const loads: TlsLoad[] = [];
  for (const load of LOADS) {
    const entry: TlsLoad = { kind: load.kind, title: load.title, tool: options.tool, connections: load.connections, rounds: {} };
    for (let round = 0; round < options.rounds; round++) {
      for (const server of servers) {
        const sample = await measureThroughput(spec(load, options.seconds), server.port, server.pid, upstream, dir);
        (entry.rounds[server.name] ??= []).push(sample);
        say(`${load.kind}/${options.tool} round ${round + 1} ${server.name}: ${sample.value.toFixed(0)} req/s${sample.errors ? ` (${sample.errors} errors)` : ''}`);
      }
    }
    loads.push(entry);
  }
  return {
    client: `${options.tool} against https://${TLS_HOST}:PORT/ (SNI and Host \`${TLS_HOST}\`, no certificate verification)`,
    haproxyMode: '`mode tcp`, `bind 127.0.0.1:PORT ssl crt LEAF.pem alpn http/1.1`',
    targets: servers.map((server) => server.name),
    loads,
    forwarded,
  };
}

/** norikae's CLI with `localhost` → the upstream (TLS terminated, the default); its leaf minted by a first request. */
async function startNorikaeTls(upstreamPort: number, dir: string): Promise<{ port: number; pid: number; child: ChildProcess }> {
  const configFile = join(dir, 'norikae-tls.toml');
  writeFileSync(configFile, [
    `log_dir = ${JSON.stringify(join(dir, 'tls-logs'))}`, '',
    '[service.tlsbench]', `host = "${TLS_HOST}"`, `port = ${upstreamPort}`, '',
  ].join('\n'));
  const nodeArgs = ['--import', pathToFileURL(join(here, 'probe.js')).href];
  const child = spawnNode(cliPath, ['--config', configFile, '--listen', '127.0.0.1:0'], nodeArgs, {
    XDG_STATE_HOME: join(dir, 'tls-state'),
    XDG_DATA_HOME: join(dir, 'tls-data'),
    DEBUG: '',
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`norikae (TLS) did not start listening within 10 s:\n${child.output()}`)), 10_000);
    child.once('exit', (code) => reject(new Error(`norikae (TLS) exited (${code}) before listening:\n${child.output()}`)));
    child.stderr!.on('data', () => {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.output());
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  // The first handshake makes the CA and mints the leaf; the second is verified against the new root.
  await httpsGet(port, undefined);
  await httpsGet(port, readFileSync(join(dir, 'tls-data', 'norikae', 'root-ca.pem'), 'utf8'));
  return { port, pid: child.pid!, child };
}

/** One GET / over HTTPS with SNI TLS_HOST; verified against `ca` when given. */
function httpsGet(port: number, ca: string | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: TLS_HOST, headers: { host: TLS_HOST }, ca, rejectUnauthorized: ca !== undefined, timeout: 10_000 }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`norikae (TLS) answered ${res.statusCode}`))));
    });
    req.once('timeout', () => req.destroy(new Error('norikae (TLS) did not answer within 10 s')));
    req.once('error', reject);
    req.end();
  });
}

/** haproxy terminating TLS with norikae's leaf (certificate and key in one PEM, as haproxy wants), foreground. */
async function startHaproxyTls(upstreamPort: number, dir: string, leafFile: string, threads: number): Promise<{ port: number; pid: number; child: ChildProcess }> {
  const port = await freePort();
  const configFile = join(dir, 'haproxy-tls.cfg');
  writeFileSync(configFile, [
    'global', '  maxconn 1000', `  nbthread ${threads}`,
    'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 1m', '  timeout server 1m',
    'listen tlsbench',
    `  bind 127.0.0.1:${port} ssl crt ${leafFile} alpn http/1.1`,
    `  server upstream 127.0.0.1:${upstreamPort}`, '',
  ].join('\n'));
  const child = spawnTracked('haproxy', ['-db', '-f', configFile]);
  const deadline = performance.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`haproxy (TLS) did not start:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { port, pid: child.pid!, child };
}

async function startTlsFloor(upstreamPort: number, leafFile: string): Promise<{ port: number; pid: number; child: ChildProcess }> {
  const child = spawnNode(join(here, 'tls-floor.js'), [String(upstreamPort), leafFile], []);
  const { port } = await reply<{ port: number }>(child, undefined, 'listening', 10_000).catch((err: Error) => {
    throw new Error(`tls-floor did not start: ${err.message}\n${child.output()}`);
  });
  return { port, pid: child.pid!, child };
}

/** A short API request head, with a client-sent X-Forwarded-For the rewriter must drop. */
const API_HEAD = Buffer.from([
  'GET /api/items?page=2 HTTP/1.1', 'Host: app.localhost:8443', 'Accept: application/json', 'User-Agent: curl/8.5.0',
  'X-Forwarded-For: 10.0.0.1', '', '',
].join('\r\n'));

/**
 * One ForwardedHeaders per round, as on one keep-alive TLS connection, fed `heads` request heads
 * (the Chrome head and the API head in turn), one write each, its output read as it comes; timed
 * from the first write to the end of its output, after an untimed warm-up round. µs per head.
 */
export async function forwardedMicrobench(rounds: number, heads: number): Promise<TlsResults['forwarded']> {
  const round = (): Promise<number> => new Promise((resolve, reject) => {
    const rewriter = new ForwardedHeaders({ clientAddress: '127.0.0.1', maxHeadSize: 16 * 1024 });
    // One pushed chunk per head; the first is checked for the header (a check per chunk would be timed too).
    let chunks = 0;
    let first = '';
    rewriter.on('data', (chunk: Buffer) => {
      if (chunks++ === 0) first = chunk.toString('latin1');
    });
    rewriter.once('error', reject);
    const start = process.hrtime.bigint();
    rewriter.once('end', () => {
      const us = Number(process.hrtime.bigint() - start) / 1000 / heads;
      if (chunks !== heads || !first.includes('\r\nX-Forwarded-Proto: https\r\n')) reject(new Error(`the rewriter gave ${chunks} heads of ${heads}, the first: ${first}`));
      else resolve(us);
    });
    for (let i = 0; i < heads; i++) rewriter.write(i % 2 === 0 ? BROWSER_HEAD : API_HEAD);
    rewriter.end();
  });
  await round();
  const roundsUs: number[] = [];
  for (let i = 0; i < rounds; i++) roundsUs.push(await round());
  return { heads, headBytes: (BROWSER_HEAD.length + API_HEAD.length) / 2, roundsUs };
}
