// The processes under test and around them: the node:http upstream, norikae-splice through its
// real CLI, haproxy in `mode tcp`, the naive Node splicer (node-floor), and every load-generator
// child. Each is its own process so no two share an event loop. All of them are tracked here and
// ended by PID in stopAll(), which run.ts calls on success, on error and on SIGINT/SIGTERM. Also:
// reading their /proc.

import { execFileSync, fork, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dial } from '../lib/dial.js';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The Host every request carries: norikae routes by it, the others ignore it. */
export const BENCH_HOST = 'bench.localhost';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The compiled CLI, which the bench runs as a user would. */
export const cliPath = fileURLToPath(new URL('../bin/norikae-splice.js', import.meta.url));

const children = new Set<ChildProcess>();

/** spawn(), tracked so stopAll() ends it; stdout/stderr are kept (last 64 KiB) for error messages. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess & { output: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  return track(child);
}

/**
 * A node script with an IPC channel, under a shell that first raises the soft descriptor limit
 * to the hard one (10 000 spliced connections need 20 000 descriptors); `exec` keeps the PID.
 */
export function spawnNode(script: string, args: string[], nodeArgs: string[], env: Record<string, string> = {}): ChildProcess & { output: () => string } {
  return spawnTracked('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'sh', process.execPath, ...nodeArgs, script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...env },
  });
}

function track(child: ChildProcess): ChildProcess & { output: () => string } {
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-65536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return Object.assign(child, { output: () => output });
}

/** Resolves with the child's exit code; rejects when it outlives `timeoutMs` (after killing it by PID). */
export function exited(child: ChildProcess, timeoutMs: number): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) kill(child.pid, 'SIGKILL');
      reject(new Error(`${child.spawnfile} ran longer than ${timeoutMs} ms and was killed`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? -1);
    });
  });
}

/** SIGTERM to every child still running (norikae then stops what it launched), SIGKILL after 5 s. */
export async function stopAll(): Promise<void> {
  const running = [...children].filter((child) => child.exitCode === null && child.signalCode === null);
  for (const child of running) kill(child.pid!, 'SIGTERM');
  await Promise.all(running.map((child) => exited(child, 5000).catch(() => undefined)));
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

export interface Upstream {
  port: number;
  pid: number;
  /** Connections accepted since it started. */
  accepts(): Promise<number>;
}

export async function startUpstream(): Promise<Upstream> {
  const child = track(fork(join(here, 'upstream.js'), [String(await freeLowPort())], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await reply<{ port: number }>(child, undefined, 'listening', 5000);
  return {
    port: port.port,
    pid: child.pid!,
    accepts: async () => (await reply<{ accepts: number }>(child, 'accepts', 'accepts', 5000)).accepts,
  };
}

/** A Node process under test (norikae or node-floor), with bench/probe.ts preloaded. */
export interface NodeTarget {
  port: number;
  pid: number;
  /** process.memoryUsage() after a full GC, from inside the process (bench/probe.ts). */
  memory(): Promise<NodeJS.MemoryUsage>;
  /** Sends `question` over IPC and resolves with the first answer of `type` (a preloaded probe's). */
  ask<T>(question: string, type: string, timeoutMs: number): Promise<T>;
}

export interface ColdService {
  name: string;
  port: number;
  stampFile: string;
}

/** The real CLI with a generated config: `bench.localhost` → the upstream, plus one launched service per cold-start trial. */
export async function startNorikae(upstreamPort: number, dir: string, cold: ColdService[], extraNodeArgs: string[] = []): Promise<NodeTarget> {
  const coldServer = join(here, 'cold-server.js');
  const toml = [
    `log_dir = ${JSON.stringify(join(dir, 'logs'))}`,
    '',
    '[service.bench]',
    `host = "${BENCH_HOST}"`,
    `port = ${upstreamPort}`,
    ...cold.flatMap((service) => [
      '',
      `[service.${service.name}]`,
      `host = "${service.name}.localhost"`,
      `port = ${service.port}`,
      `command = ${JSON.stringify(`exec ${shellQuote(process.execPath)} ${shellQuote(coldServer)} {port} ${shellQuote(service.stampFile)}`)}`,
    ]),
  ].join('\n');
  const configFile = join(dir, 'norikae.toml');
  writeFileSync(configFile, `${toml}\n`);
  const nodeArgs = ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.js')).href, ...extraNodeArgs];
  const child = spawnNode(cliPath, ['--config', configFile, '--listen', '127.0.0.1:0'], nodeArgs, {
    XDG_STATE_HOME: join(dir, 'state'),
    DEBUG: '',
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`norikae did not start listening within 10 s:\n${child.output()}`)), 10_000);
    child.once('exit', (code) => reject(new Error(`norikae exited (${code}) before listening:\n${child.output()}`)));
    child.stderr!.on('data', () => {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.output());
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  return {
    port, pid: child.pid!, memory: () => reply<NodeJS.MemoryUsage>(child, 'memory', 'memory', 10_000),
    ask: (question, type, timeoutMs) => reply(child, question, type, timeoutMs),
  };
}

/**
 * The naive `net` + `pipe` splicer (bench/node-floor.ts) in front of the same upstream, under
 * spawnNode's raised descriptor limit (it holds the idle connections too) and with the probe.
 */
export async function startNodeFloor(upstreamPort: number): Promise<NodeTarget> {
  const nodeArgs = ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.js')).href];
  const child = spawnNode(join(here, 'node-floor.js'), [String(upstreamPort)], nodeArgs);
  // Its crash would otherwise only show as clients left without answers.
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`node-floor exited (${signal ?? code}) during the bench:\n${child.output()}\n`);
  });
  const { port } = await reply<{ port: number }>(child, undefined, 'listening', 10_000).catch((err: Error) => {
    throw new Error(`node-floor did not start: ${err.message}\n${child.output()}`);
  });
  return {
    port, pid: child.pid!, memory: () => reply<NodeJS.MemoryUsage>(child, 'memory', 'memory', 10_000),
    ask: (question, type, timeoutMs) => reply(child, question, type, timeoutMs),
  };
}

/**
 * haproxy in `mode tcp` in front of the same upstream, foreground (`-db`) so its PID is ours.
 * Its thread count is a setting because haproxy defaults to one thread per core while norikae
 * has one event loop; run.ts reports which it used.
 */
export async function startHaproxy(upstreamPort: number, dir: string, options: { maxconn: number; threads: number }): Promise<{ port: number; pid: number }> {
  const port = await freePort();
  const config = [
    'global',
    `  maxconn ${options.maxconn}`,
    `  nbthread ${options.threads}`,
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    // Long enough for the idle-connection measurement.
    '  timeout client 10m',
    '  timeout server 10m',
    'listen bench',
    `  bind 127.0.0.1:${port}`,
    `  server upstream 127.0.0.1:${upstreamPort}`,
  ].join('\n');
  const configFile = join(dir, 'haproxy.cfg');
  writeFileSync(configFile, `${config}\n`);
  const child = spawnTracked('haproxy', ['-db', '-f', configFile]);
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`haproxy did not start:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { port, pid: child.pid! };
}

/** Sends `question` (if any) over IPC and waits for the message of type `type`. */
export async function reply<T>(child: ChildProcess, question: string | undefined, type: string, timeoutMs: number): Promise<T> {
  const answer = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no "${type}" from pid ${child.pid} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: { type?: string }): void => {
      if (message?.type === type) done(undefined, message as T);
    };
    const onExit = (): void => done(new Error(`pid ${child.pid} exited before answering "${type}"`));
    const done = (err: Error | undefined, value?: T): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value!);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
  if (question !== undefined) child.send(question);
  return answer;
}

/** Resident memory in bytes (VmRSS of /proc/PID/status). */
export function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User and system CPU time of a process (all its threads) in µs, from /proc/PID/stat. */
export function cpuOf(pid: number): { userUs: number; sysUs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { userUs: (Number(fields[11]) * 1e6) / clockTicks, sysUs: (Number(fields[12]) * 1e6) / clockTicks };
}

/**
 * A free port below the kernel's ephemeral range, as dev servers use (3000, 5173, 8080…): one in
 * the range may be taken as the source port of some client connection by the time it is used,
 * minutes of loads later, and dialling one costs norikae a self-connect check a real config
 * does not pay (lib/dial.ts). 24000–32767, clear of the scale configs' 21000–21999.
 */
export async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 24_000 + Math.floor(Math.random() * 8_768);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  throw new Error('no free port in 24000–32767 after 200 tries');
}

/** A port nothing listens on: bound, read and released. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One connect attempt through lib/dial.ts, whose self-connect guard matters here: freePort() ports are ephemeral. */
export function accepts(port: number): Promise<boolean> {
  return dial('127.0.0.1', port, 1000).then((socket) => (socket.destroy(), true), () => false);
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
