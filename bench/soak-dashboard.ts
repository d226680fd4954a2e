// The soak's clients of the dashboard host: an event-stream reader that stops reading while a
// service prints a lot, and slowloris connections that trickle their second head. Loopback only;
// every wait is bounded.

import { connect, type Socket } from 'node:net';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens /api/events and stops reading once its head came; `resume` reads again and sums the `dropped` events. */
export async function slowEventReader(port: number): Promise<{ resume: () => Promise<{ status: string; droppedLines: number; bytesRead: number }> }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.setEncoding('latin1');
  const onData = (chunk: string): void => {
    // Whole events only; what follows the last one waits for the next chunk.
    const events = (text + chunk).split('\n\n');
    text = events.pop()!.slice(-65_536);
    for (const event of events) {
      // An event may follow a chunk-size line: the stream is chunked.
      const lines = /event: dropped\ndata: \{"name":"[^"]*","lines":(\d+)\}$/.exec(event)?.[1];
      if (lines !== undefined) droppedLines += Number(lines);
    }
  };
  let droppedLines = 0;
  socket.write('GET /api/events HTTP/1.1\r\nHost: norikae.localhost\r\n\r\n');
  let head = '';
  await new Promise<void>((resolve) => {
    const onHead = (chunk: string): void => {
      head += chunk;
      if (!head.includes('norikae-splice events')) return;
      socket.off('data', onHead);
      socket.pause();
      resolve();
    };
    socket.on('data', onHead);
    setTimeout(resolve, 5000);
  });
  return {
    resume: async () => {
      socket.on('data', onData);
      socket.resume();
      // It catches up on what the kernel buffered, then is told what was dropped.
      for (let i = 0; i < 100 && droppedLines === 0; i++) await delay(100);
      await delay(500);
      socket.destroy();
      return { status: head.slice(0, head.indexOf('\r\n')), droppedLines, bytesRead: socket.bytesRead };
    },
  };
}

/**
 * `count` keep-alive connections to the dashboard host that each ask once, then trickle a second
 * head a byte every 500 ms, for `maxSeconds` at most. Resolves with how many norikae answered 408
 * and closed, and how many were still open when the time was up.
 */
export async function dashboardSlowloris(port: number, count: number, maxSeconds: number): Promise<{ answered408: number; stillOpen: number }> {
  const results = await Promise.all(Array.from({ length: count }, async () => {
    const socket: Socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.write('GET /api/services HTTP/1.1\r\nHost: norikae.localhost\r\n\r\n');
    for (let i = 0; i < 400 && !/^HTTP\/1\.1 200[^]*\r\n\r\n/.test(text); i++) await delay(50);
    const started = performance.now();
    const trickle = 'GET /api/services HTTP/1.1\r\nHost: norikae.localhost\r\nX-Slow: ' + 'a'.repeat(200);
    for (let i = 0; !socket.destroyed && socket.readyState === 'open' && performance.now() - started < maxSeconds * 1000; i = (i + 1) % trickle.length) {
      socket.write(trickle[i]!);
      await delay(500);
    }
    const open = !socket.destroyed && socket.readyState === 'open';
    socket.destroy();
    return { answered408: /HTTP\/1\.1 408 /.test(text), open };
  }));
  return { answered408: results.filter((r) => r.answered408).length, stillOpen: results.filter((r) => r.open).length };
}
