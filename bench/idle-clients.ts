// The client side of the idle-connection measurement, in a process of its own (it needs as many
// descriptors as connections). Opens COUNT connections to PORT, each sends one keep-alive request
// and reads its answer, so the connection is spliced through to the upstream; then they sit idle.
// Reports { opened, failed } over IPC; on "close" resets them all (no TIME_WAIT) and exits.
// Usage: node idle-clients.js PORT COUNT HOST

import { connect, type Socket } from 'node:net';

const [port, count, host] = process.argv.slice(2);
const total = Number(count);
/** Connections being opened at once: enough to be quick, few enough not to overflow the backlog. */
const PARALLEL = 200;
const sockets: Socket[] = [];
let failed = 0;
let firstError: string | undefined;

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      failed++;
      firstError ??= err.message;
      socket.destroy();
      resolve();
    };
    socket.setTimeout(10_000, () => fail(new Error('no answer within 10 s')));
    socket.once('error', fail);
    // A proxy that closes without answering (its upstream connect failed) must not leave this hanging.
    socket.once('close', () => fail(new Error('closed before answering')));
    socket.once('data', (chunk: Buffer) => {
      if (settled) return;
      if (!chunk.toString('latin1').startsWith('HTTP/1.1 200')) return fail(new Error(`unexpected answer: ${chunk.toString('latin1', 0, 40)}`));
      settled = true;
      socket.setTimeout(0);
      socket.off('error', fail);
      socket.on('error', () => undefined);
      sockets.push(socket);
      resolve();
    });
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

let next = 0;
async function worker(): Promise<void> {
  while (next < total) {
    next++;
    await openOne();
  }
}
await Promise.all(Array.from({ length: Math.min(PARALLEL, total) }, worker));
process.send!({ type: 'opened', opened: sockets.length, failed, firstError });

process.on('message', (message) => {
  if (message !== 'close') return;
  for (const socket of sockets) socket.resetAndDestroy();
  setImmediate(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
