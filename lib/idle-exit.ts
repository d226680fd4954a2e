// `exit_when_idle`: a norikae-splice that systemd started on the first connection exits once
// nothing has happened for a while (no service running, no connection open), so it costs nothing
// until the next connection starts it again. Idle time is counted on a monotonic clock.

import { performance } from 'node:perf_hooks';

/** How often idleness is looked at. */
const TICK_MS = 250;

/**
 * Calls `onIdle` once `isIdle()` has held for `seconds()` without a break (undefined: never; a
 * reload may change it). Returns the function that stops watching.
 */
export function watchIdle(seconds: () => number | undefined, isIdle: () => boolean, onIdle: () => void): () => void {
  let idleSince: number | undefined;
  const timer = setInterval(() => {
    const limit = seconds();
    if (limit === undefined || !isIdle()) {
      idleSince = undefined;
      return;
    }
    const now = performance.now();
    idleSince ??= now;
    if (now - idleSince < limit * 1000) return;
    clearInterval(timer);
    onIdle();
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
