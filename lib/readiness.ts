// Deciding a launch is ready: the port accepts a connection. We poll every few tens of
// milliseconds instead of sleeping a fixed time, so a server that binds in 300 ms is served in
// about 300 ms. `delay` (Norikae's key) only postpones the first attempt.

import { connect } from 'node:net';
import { isSelfConnection } from './dial.js';
import type { ExitStatus } from './launch.js';

const POLL_INTERVAL_MS = 25;

export interface ReadinessCheck {
  host: string;
  port: number;
  /** Wait this long before the first attempt. */
  delayMs: number;
  /** Give up after this long, counted from the start (delay included). */
  timeoutMs: number;
  /** Settles when the launched process exits: then waiting is pointless. */
  exited: Promise<ExitStatus>;
}

export type Readiness =
  | { state: 'ready' }
  | { state: 'exited'; status: ExitStatus }
  | { state: 'timeout' };

export async function waitUntilReady(check: ReadinessCheck): Promise<Readiness> {
  const deadline = Date.now() + check.timeoutMs;
  let exit: ExitStatus | undefined;
  void check.exited.then((status) => (exit = status));
  // Wakes a sleeping poll loop as soon as the process exits.
  const exitedOrSleep = (ms: number): Promise<unknown> => Promise.race([check.exited, sleep(ms)]);

  if (check.delayMs > 0) await exitedOrSleep(Math.min(check.delayMs, check.timeoutMs));
  for (;;) {
    if (exit !== undefined) return { state: 'exited', status: exit };
    const remaining = deadline - Date.now();
    if (remaining <= 0) return { state: 'timeout' };
    if (await accepts(check.host, check.port, Math.min(remaining, 1000))) return { state: 'ready' };
    await exitedOrSleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
  }
}

/** One connect attempt: true if the port accepted within `timeoutMs`. */
export function accepts(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(!isSelfConnection(socket)));
    socket.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
