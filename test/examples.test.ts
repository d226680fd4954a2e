// The demo's services (examples/) as real child processes, spoken to over raw sockets: the
// WebSocket handshake and frames by hand, and the half-close a client may end with. A server that
// never ends its side keeps the splice's connection, and its socket sits in CLOSE-WAIT.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectTo, waitFor } from './helpers.js';
import { start } from './launch-harness.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe('examples/ws-echo.mjs', () => {
  test('echoes a frame, and ends its side when the client ends its own', async (t) => {
    const socket = await connectTo(t, await startExample(t, 'ws-echo.mjs'), { allowHalfOpen: true });
    const inbox = collect(socket);
    await handshake(socket, inbox, 'localhost');
    socket.write(clientFrame('ping'));
    await waitFor(() => inbox.bytes().length >= 6, 'the echo', 5000);
    assert.deepEqual(inbox.bytes(), Buffer.concat([Buffer.from([0x81, 4]), Buffer.from('ping')]));

    const closing = endedAndClosed(socket);
    socket.end();
    await withTimeout(closing, 2000, 'the echo server ended its side after the client ended its own');
  });

  test('through the splicer: a client\'s half-close ends the connection and the service\'s count', async (t) => {
    const h = await start(t, `[service.echo]\nhost = "echo.localhost"\ncommand = "node ${join(EXAMPLES, 'ws-echo.mjs')} {port}"\n`);
    const socket = await connectTo(t, h.port, { allowHalfOpen: true });
    const inbox = collect(socket);
    await handshake(socket, inbox, 'echo.localhost');
    assert.equal(h.supervisor.info('echo')!.connections, 1);

    const closing = endedAndClosed(socket);
    socket.end();
    await withTimeout(closing, 2000, 'the spliced echo connection closed after the client ended its side');
    await waitFor(() => h.supervisor.info('echo')!.connections === 0, 'the echo service\'s connection count back to 0', 2000);
  });
});

describe('examples/hello.mjs', () => {
  test('ends its side when a keep-alive client ends its own', async (t) => {
    const socket = await connectTo(t, await startExample(t, 'hello.mjs'), { allowHalfOpen: true });
    const inbox = collect(socket);
    socket.write('GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n');
    await waitFor(() => inbox.bytes().includes('</html>'), 'the page', 5000);
    assert.match(inbox.bytes().toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);

    const closing = endedAndClosed(socket);
    socket.end();
    await withTimeout(closing, 2000, 'hello ended its side after the client ended its own');
  });
});

/** Runs an example on port 0; resolves with the port it prints. Killed (by PID) after the test. */
async function startExample(t: TestContext, script: string): Promise<number> {
  const child = spawn(process.execPath, [join(EXAMPLES, script), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  return withTimeout(new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      const match = / listening on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}) before listening: ${output}`)));
  }), 10_000, `${script} printed the port it listens on`);
}

interface Inbox {
  /** Everything received since the start or the last `clear`. */
  bytes: () => Buffer;
  clear: () => void;
}

/** Keeps what `socket` receives. */
function collect(socket: Socket): Inbox {
  let chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return {
    bytes: () => Buffer.concat(chunks),
    clear: () => {
      chunks = [];
    },
  };
}

/** The client's side of an RFC 6455 opening handshake, checked; the answer is cleared from `inbox`. */
async function handshake(socket: Socket, inbox: Inbox, host: string): Promise<void> {
  socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await waitFor(() => inbox.bytes().includes('\r\n\r\n'), 'the handshake\'s answer', 10_000);
  const answer = inbox.bytes().toString('latin1');
  const accept = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  assert.match(answer, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.ok(answer.includes(`\r\nSec-WebSocket-Accept: ${accept}\r\n`), answer);
  assert.ok(answer.endsWith('\r\n\r\n'), 'nothing follows the answer yet');
  inbox.clear();
}

/** A masked text frame, as a client must send it. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((byte, i) => byte ^ mask[i & 3]!)]);
}

/** Resolves once the peer has ended its side and the socket has closed. */
function endedAndClosed(socket: Socket): Promise<void> {
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return Promise.all([ended, closed]).then(() => undefined);
}

/** `promise`, or a rejection saying what did not happen within `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}
