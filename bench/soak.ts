// Soak: many connections through a running norikae-splice (the real CLI, in its own process),
// most of them ordinary requests, some garbage and some reset half-way, then a check that its
// descriptors and memory came back to where they started. Meanwhile, on the dashboard host, an
// event-stream reader stops reading while a service prints 40 MB (its memory must stay bounded,
// and it must be told what it missed), and slowloris connections trickle their second head (each
// must get 408 within head_timeout). Loopback only; bounded in count and in time
// (`--connections N`, `--seconds S`).
//
//   npm run soak -- --connections 100000 --seconds 300

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dashboardSlowloris, slowEventReader } from './soak-dashboard.js';
import { fdCount, rssOf } from './targets.js';

/** A service that prints N lines on GET /print?lines=N (the tests' fixture). */
const CHATTY = fileURLToPath(new URL('../test/fixtures/chatty-server.js', import.meta.url));

const CLI = fileURLToPath(new URL('../bin/norikae-splice.js', import.meta.url));
const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const index = args.indexOf(name);
  return index === -1 ? fallback : Number(args[index + 1]);
};
const total = option('--connections', 100_000);
const seconds = option('--seconds', 300);
const concurrency = option('--concurrency', 100);

const upstream: Server = createServer((_req, res) => res.end('ok'));
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const dir = mkdtempSync(join(tmpdir(), 'norikae-soak-'));
const chattyPort = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address() as AddressInfo;
    probe.close(() => resolve(port));
  });
});
writeFileSync(join(dir, 'norikae.toml'), `head_timeout = 2\n[service.app]\nport = ${(upstream.address() as AddressInfo).port}\n`
  + `[service.chatty]\nport = ${chattyPort}\ncommand = "node ${CHATTY}"\n`);
const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir } });
let stderr = '';
child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
const stop = (): void => {
  child.kill('SIGTERM');
  upstream.close();
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  stop();
  process.exit(130);
});

while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(stderr)) {
  if (child.exitCode !== null) throw new Error(`norikae-splice did not start: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
const request = 'GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n';

/** Descriptors and resident memory of the norikae process. */
function usage(): { fds: number; rssKiB: number } {
  return { fds: fdCount(child.pid!), rssKiB: rssOf(child.pid!) / 1024 };
}

function oneConnection(i: number): Promise<'ok' | 'refused' | 'other'> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1', 0, 16)));
    socket.on('close', () => resolve(answer.startsWith('HTTP/1.1 200') ? 'ok' : answer.startsWith('HTTP/1.1 4') ? 'refused' : 'other'));
    socket.on('connect', () => {
      const kind = i % 10;
      if (kind === 8) socket.end(randomBytes(64)); // garbage
      else if (kind === 9) {
        socket.write(request.slice(0, 20)); // a reset half-way through a head
        setImmediate(() => socket.resetAndDestroy());
      } else socket.end(request);
    });
  });
}

/** One request to chatty.localhost (which launches it); resolves once it answered. */
function askChatty(path: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(120_000, () => socket.destroy());
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.resume();
    socket.end(`GET ${path} HTTP/1.1\r\nHost: chatty.localhost\r\nConnection: close\r\n\r\n`);
  });
}

// Warm up (the first connection loads the parser; chatty is launched), then measure.
await oneConnection(0);
await askChatty('/print?lines=1');
await new Promise((resolve) => setTimeout(resolve, 500));
const before = usage();
const started = Date.now();
const deadline = started + seconds * 1000;
const outcomes = { ok: 0, refused: 0, other: 0 };
let next = 0;
let peak = before;
const reader = await slowEventReader(port);
const dashboardClients = Promise.all([
  dashboardSlowloris(port, 50, 10),
  // 200 000 lines of ~200 bytes while the reader does not read.
  askChatty('/print?lines=200000'),
]);
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < total && Date.now() < deadline) {
    outcomes[await oneConnection(next++)]++;
    if (next % 5000 === 0) {
      const now = usage();
      if (now.rssKiB > peak.rssKiB) peak = now;
    }
  }
}));
const elapsed = (Date.now() - started) / 1000;
const [slowloris] = await dashboardClients;
const atSlowestReader = usage();
const slowReader = await reader.resume();
// Answered connections linger up to 2 s for their clients; give them that, and the GC a moment.
await new Promise((resolve) => setTimeout(resolve, 3000));
const after = usage();

console.log(JSON.stringify({
  connections: next,
  seconds: Number(elapsed.toFixed(1)),
  perSecond: Math.round(next / elapsed),
  outcomes,
  before,
  peakRssKiB: peak.rssKiB,
  after,
  descriptorsBack: after.fds === before.fds,
  rssGrowthKiB: after.rssKiB - before.rssKiB,
  dashboard: {
    slowloris: { connections: 50, ...slowloris },
    slowEventReader: { ...slowReader, rssKiBWhileBehind: atSlowestReader.rssKiB },
  },
  alive: child.exitCode === null,
}, null, 2));
const problems = [
  after.fds !== before.fds && `descriptors ${before.fds} → ${after.fds}`,
  child.exitCode !== null && 'norikae-splice exited',
  slowloris.stillOpen > 0 && `${slowloris.stillOpen} dashboard slowloris connections were still open after 10 s (head_timeout is 2 s)`,
  slowloris.answered408 < 50 && `only ${slowloris.answered408} of 50 dashboard slowloris connections were answered 408`,
  slowReader.droppedLines === 0 && 'the slow event reader was not told of dropped lines',
].filter(Boolean);
for (const problem of problems) console.error(`soak: ${problem}`);
if (problems.length > 0) process.exitCode = 1;
stop();
