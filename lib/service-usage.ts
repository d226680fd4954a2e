// How much a service is used: its open spliced connections, the bytes they carried, and the idle
// timer that stops it once nobody has used it for `idle_timeout`. A service that a running service
// `requires` is in use too: its dependent talks to it directly, past norikae.

import type { Socket } from 'node:net';
import { startTimer, type Timer } from './timer.js';

/** What the usage needs of its service. */
export interface UsageOwner {
  /** Seconds without use before the idle stop; undefined = never. */
  idleTimeout(): number | undefined;
  /** Whether a process of ours runs (only that can be idle-stopped). */
  running(): boolean;
  /** Whether a running service requires this one. */
  hasRunningDependent(): boolean;
  /** It was idle for `seconds`: stop it. */
  idle(seconds: number): void;
  /** The counters changed (announced in batches). */
  changed(): void;
}

export class ServiceUsage {
  /** Open spliced upstream sockets: the connection count, live byte counts, the idle stop. */
  readonly upstreams = new Set<Socket>();
  /** Not counting idle time because a running service requires it (see armIdleTimer). */
  heldByDependent = false;
  /** performance.now() of the last idle stop. */
  idleStoppedAt = -Infinity;
  /** Bytes of the connections that have closed. */
  private closedIn = 0;
  private closedOut = 0;
  private idleTimer: Timer | undefined;

  constructor(private readonly owner: UsageOwner) {}

  /** Counts a spliced connection; the idle timer runs only while there are none. */
  track(upstream: Socket): Socket {
    this.upstreams.add(upstream);
    this.idleTimer?.clear();
    // `on`, not `once`: 'close' comes once anyway, and once() costs a wrapper per connection.
    upstream.on('close', () => {
      this.upstreams.delete(upstream);
      this.closedIn += upstream.bytesWritten;
      this.closedOut += upstream.bytesRead;
      if (this.upstreams.size === 0) this.armIdleTimer();
      this.owner.changed();
    });
    this.owner.changed();
    return upstream;
  }

  /** Bytes from clients to the service (`in`) and back (`out`), over all connections so far. */
  bytes(): { in: number; out: number } {
    let bytesIn = this.closedIn;
    let bytesOut = this.closedOut;
    for (const upstream of this.upstreams) {
      bytesIn += upstream.bytesWritten;
      bytesOut += upstream.bytesRead;
    }
    return { in: bytesIn, out: bytesOut };
  }

  /**
   * Starts counting idle time, unless it has connections, or a running service `requires` it.
   * The count starts again when the last connection or the last dependent is gone.
   */
  armIdleTimer(): void {
    const seconds = this.owner.idleTimeout();
    this.idleTimer?.clear();
    this.heldByDependent = false;
    if (seconds === undefined || !this.owner.running() || this.upstreams.size > 0) return;
    if (this.owner.hasRunningDependent()) {
      this.heldByDependent = true;
      return;
    }
    // Any length: a 30-day idle_timeout is not 1 ms (see timer.ts).
    this.idleTimer = startTimer(seconds * 1000, () => {
      // A reload may have made a running service require it meanwhile.
      if (this.owner.hasRunningDependent()) {
        this.heldByDependent = true;
        return;
      }
      this.idleStoppedAt = performance.now();
      this.owner.idle(seconds);
    }, { unref: true });
  }

  /** A service that requires this one started: it is in use while that one runs. */
  holdForDependent(): void {
    this.idleTimer?.clear();
    this.heldByDependent = this.owner.running();
  }

  /** Its process is going or gone: no idle stop is due. */
  stopIdleTimer(): void {
    this.idleTimer?.clear();
  }
}
