// Shared test plumbing: real servers on 127.0.0.1 port 0, a splicer built from TOML text, and raw
// socket clients. Everything started here is closed through `t.after`, so a failed assertion
// cannot leave a server or a socket behind.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Certificates } from '../lib/certificates.js';
import { type Config } from '../lib/config.js';
import { parseConfig } from '../lib/config-file.js';
import { memoryLog } from '../lib/log.js';
import { SpliceServer, type HostHandler, type UpstreamConnector } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';

/** The compiled CLI, run as a child process by the tests that go through it. */
export const CLI = fileURLToPath(new URL('../bin/norikae-splice.js', import.meta.url));

/** The package's folder: where the CLI runs in tests unless told otherwise. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Starts the CLI (or `script`) with `args` (after `nodeArgs` for node itself, e.g. `--import`),
 * its output collected; killed (by PID) after the test if still running.
 */
export function startCli(
  t: TestContext,
  args: string[],
  cwd = PACKAGE_ROOT,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
  script = CLI,
): ChildProcess & { output: () => { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return Object.assign(child, { output: () => ({ stdout, stderr }) });
}

/** A small HTTP dev server that services launch (fixtures/dev-server.ts). */
export const DEV_SERVER = fileURLToPath(new URL('./fixtures/dev-server.js', import.meta.url));

/** Starts a node:http server on 127.0.0.1:0, closed after the test. */
export async function startHttpUpstream(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void = echoRequestInfo,
): Promise<{ server: HttpServer; port: number }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 5000;
  await listenOn(server);
  t.after(() => closeServer(server));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Answers with the request's method, URL and Host as JSON: enough to see where a request went. */
export function echoRequestInfo(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, port: req.socket.localPort });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A SpliceServer on 127.0.0.1:0 built from TOML service tables (`top`: lines before them), closed
 * after the test. Its connector is a ServiceSupervisor of the same config unless one is given;
 * its local CA lives in a temporary folder (`caDir`), made on first need and removed after.
 */
export async function startSplicer(
  t: TestContext,
  servicesToml: string,
  options: { top?: string; connector?: UpstreamConnector; dashboard?: HostHandler; now?: () => number } = {},
): Promise<{ splicer: SpliceServer; port: number; config: Config; log: ReturnType<typeof memoryLog>; certificates: Certificates; caDir: string }> {
  const config = parseConfig(`listen = "127.0.0.1:0"\n${options.top ?? ''}\n${servicesToml}`, '/test/norikae.toml');
  const log = memoryLog();
  const supervisor = options.connector === undefined ? new ServiceSupervisor(config, { log }) : undefined;
  const home = mkdtempSync(join(tmpdir(), 'norikae-ca-'));
  const caDir = join(home, 'norikae');
  let splicer: SpliceServer | undefined;
  const certificates = new Certificates({ dir: caDir, hosts: () => splicer!.claimedNames(), now: options.now });
  splicer = new SpliceServer(config, { log, connector: options.connector ?? supervisor!, dashboard: options.dashboard, certificates });
  t.after(async () => {
    await splicer.close();
    await supervisor?.stopAll();
  });
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const [address] = await splicer.listen();
  return { splicer, port: address!.port, config, log, certificates, caDir };
}

/** Connects to 127.0.0.1:port; the socket is destroyed after the test. */
export async function connectTo(t: TestContext, port: number, options: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen ?? false });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

/** Resolves on 'close' (events.once would reject on the 'error' a reset brings first). */
export function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Everything the peer sends until it closes. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Sends `parts` (with a pause between them, so they arrive as separate reads) and reads until close. */
export async function exchange(t: TestContext, port: number, parts: (string | Buffer)[], pauseMs = 0): Promise<Buffer> {
  const socket = await connectTo(t, port);
  const reply = readAll(socket);
  for (const [i, part] of parts.entries()) {
    if (i > 0 && pauseMs > 0) await delay(pauseMs);
    socket.write(part);
  }
  return reply;
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits one HTTP/1.1 response (as our answers write them: Content-Length, no chunking). */
export function parseResponse(raw: Buffer): ParsedResponse {
  const text = raw.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/** A GET head for `host`, closing the connection after the response. */
export function getHead(host: string, path = '/', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;
}

/** Polls `condition` every 20 ms; rejects naming `what` when it is still false after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function listenOn(server: Server | HttpServer, port = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    server.close(() => resolve());
  });
}

/**
 * The next chunk `stream` reads. Rejects, saying `what` was awaited, when it ends or closes first
 * or nothing comes within `timeoutMs`: a test waiting on a socket must not wait forever.
 */
export function nextData<T extends Buffer | string = Buffer>(stream: Readable, what: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const settle = (settled: () => void): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      settled();
    };
    const onData = (chunk: T): void => settle(() => resolve(chunk));
    const onEnd = (): void => settle(() => reject(new Error(`${what}: the stream ended before any data`)));
    const timer = setTimeout(() => settle(() => reject(new Error(`${what}: no data within ${timeoutMs} ms`))), timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}

/** Counts turns of the event loop (an immediate that queues itself again) until `stop()`. */
export function countTurns(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let counting = true;
  const count = (): void => {
    turns++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  return {
    turns: () => turns,
    stop: () => {
      counting = false;
    },
  };
}

/** A port that nothing listens on: bound, read, and released. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await listenOn(server);
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

/** The first flight of a TLS client (one ClientHello record), as a plain TCP server receives it. */
export async function captureClientHello(options: ConnectionOptions): Promise<Buffer> {
  // A plain TCP server: an HTTP one would try to parse the hello and answer 400.
  const server = createTcpServer();
  await listenOn(server);
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let bytes = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        bytes = Buffer.concat([bytes, chunk]);
        // The record header says how long the hello is, without asking the parser under test.
        if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) {
          resolve(bytes);
          socket.destroy();
        }
      });
    });
  });
  const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...options });
  client.on('error', () => {}); // no ServerHello ever comes: the hang-up is expected
  try {
    const bytes = await captured;
    if (bytes.length !== 5 + bytes.readUInt16BE(3)) throw new Error('the TLS client sent more than one record');
    return bytes;
  } finally {
    client.destroy();
    await closeServer(server);
  }
}

/** The exit code of `child`; rejects when it has not exited within `timeoutMs`. */
export async function exitWithin(child: ChildProcess, timeoutMs: number, what: string): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      once(child, 'exit').then(([code]) => code as number | null),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not exit within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One request over TLS to 127.0.0.1:port for `servername`, trusting only `ca`; the whole answer. */
export function httpsRequest(t: TestContext, port: number, servername: string, ca: string, head: string, options: ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, servername, ...(ca === '' ? {} : { ca }), ...options });
    t.after(() => socket.destroy());
    let text = '';
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => socket.write(head));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

/** Runs `command` with `input` on its stdin (killed after 20 s); its exit status and output. */
export function runWithInput(command: string, args: string[], input: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The compiled CLI run to its end: its exit code and everything it printed. `uid` runs it as that user (the suite runs as root), with `cli` from cliForOtherUsers. */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; cli?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
    cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', ...options.env },
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * The CLI as another user can run it. The checkout may sit in a folder only we may enter (a clone
 * in `mktemp -d` is 0700), so dist/, node_modules/ and package.json are linked (hard links, else
 * copies) into a folder every user may read, removed after the test.
 */
export function cliForOtherUsers(t: TestContext): string {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'norikae-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  for (const part of ['dist', 'node_modules', 'package.json']) {
    const linked = spawnSync('cp', ['-al', join(root, part), dir]);
    if (linked.status !== 0) execFileSync('cp', ['-a', join(root, part), dir]);
  }
  return join(dir, 'dist', 'bin', 'norikae-splice.js');
}
