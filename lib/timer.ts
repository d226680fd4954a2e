// A timer of any length. Node's setTimeout takes at most 2^31-1 ms (24.8 days) and turns anything
// longer into 1 ms, so `idle_timeout = 2592000` (30 days) would stop a service at once. Every
// config duration that becomes a timer goes through here: a delay longer than that is waited in
// steps, against a deadline on the monotonic clock; Infinity never fires.

import { performance } from 'node:perf_hooks';

/** The longest delay setTimeout takes as given. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer started by startTimer: clear() cancels it. */
export interface Timer {
  clear(): void;
}

/**
 * Calls `callback` once `ms` have passed (any length, Infinity: never). `unref`: the timer does
 * not keep the process alive. A delay that fits setTimeout costs one setTimeout, nothing more.
 */
export function startTimer(ms: number, callback: () => void, options: { unref?: boolean } = {}): Timer {
  const delay = Number.isNaN(ms) ? 0 : Math.max(0, ms);
  if (delay <= MAX_TIMER_MS) {
    const timer = setTimeout(callback, delay);
    if (options.unref) timer.unref();
    return { clear: () => clearTimeout(timer) };
  }
  return new SteppedTimer(delay, callback, options.unref === true);
}

/** A delay longer than setTimeout takes, waited in steps of at most MAX_TIMER_MS. */
class SteppedTimer implements Timer {
  private readonly deadline: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number, private readonly callback: () => void, private readonly unref: boolean) {
    this.deadline = performance.now() + ms;
    this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const left = this.deadline - performance.now();
    if (left <= 0) {
      this.timer = undefined;
      this.callback();
      return;
    }
    this.timer = setTimeout(() => this.arm(), Math.min(left, MAX_TIMER_MS));
    if (this.unref) this.timer.unref();
  }
}
