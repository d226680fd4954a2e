// The deadline of every connection still sending its first head (or its TLS handshake and first
// head), kept without a timer per connection: all share one timeout, so insertion order is
// deadline order (also after a reload changes `head_timeout`), and one sweep a second finds the
// expired ones at the front.

import type { Socket } from 'node:net';
import { headErrors, type HeadError } from './errors.js';

export class HeadDeadlines {
  private readonly waiting = new Map<Socket, { since: number; giveUp: (error: HeadError) => void }>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Seconds a first head may take. */
  private timeout = 0;

  /** Sweeps four times per `seconds` (at most once a second); again with the new timeout after a reload. */
  start(seconds: number): void {
    this.timeout = seconds;
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.expire(), Math.min(1000, seconds * 250));
    this.sweeper.unref();
  }

  /** Whether sweeps run (between start and stop). */
  get started(): boolean {
    return this.sweeper !== undefined;
  }

  stop(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** `socket`'s head is due within the timeout from now; `giveUp` answers it when it is not. */
  add(socket: Socket, giveUp: (error: HeadError) => void): void {
    // Monotonic: a step of the wall clock must not stretch or cut the head timeout.
    this.waiting.set(socket, { since: performance.now(), giveUp });
  }

  delete(socket: Socket): void {
    this.waiting.delete(socket);
  }

  /** Answers 408 to every connection whose first head is overdue. */
  private expire(): void {
    const cutoff = performance.now() - this.timeout * 1000;
    for (const { since, giveUp } of this.waiting.values()) {
      if (since > cutoff) break;
      giveUp(headErrors.timeout(this.timeout));
    }
  }
}
