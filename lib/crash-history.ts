// A service's recent unexpected exits, and the back-off they earn: a dev server that dies at once
// on every launch must not be relaunched by every request (or every hot-reload reconnect).

import type { ExitStatus } from './launch.js';

/** This many exits within CRASH_WINDOW_MS make a crash loop. */
export const CRASH_LIMIT = 3;
export const CRASH_WINDOW_MS = 30_000;
/** The first pause after a crash loop; it doubles while the loop goes on. */
const BACKOFF_START_MS = 5_000;
const BACKOFF_MAX_MS = 60_000;

export interface ExitRecord {
  code: number | null;
  signal: string | null;
  /** Epoch ms, for people (the dashboard shows it). */
  at: number;
}

export class CrashHistory {
  /** The last exit, expected or not. */
  lastExit: ExitRecord | undefined;
  /** Monotonic times (performance.now) of the recent unexpected exits. */
  private exits: number[] = [];
  private backoffMs = 0;
  private backoffUntil = 0;

  /** An exit that was asked for (a stop): remembered, not counted. */
  stopped(status: ExitStatus): void {
    this.lastExit = { code: status.code, signal: status.signal, at: Date.now() };
  }

  /**
   * An exit nobody asked for, of a process that had run `ranMs`. Returns the pause it starts when
   * it completes a crash loop (CRASH_LIMIT exits within CRASH_WINDOW_MS), else undefined.
   */
  crashed(status: ExitStatus, ranMs: number): number | undefined {
    const now = performance.now();
    this.lastExit = { code: status.code, signal: status.signal, at: Date.now() };
    this.exits = [...this.exits.filter((at) => now - at < CRASH_WINDOW_MS), now];
    // A process that ran for a while before it died ends the loop it was in.
    if (ranMs > CRASH_WINDOW_MS) this.backoffMs = 0;
    if (this.exits.length < CRASH_LIMIT) return undefined;
    this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2 || BACKOFF_START_MS);
    this.backoffUntil = now + this.backoffMs;
    return this.backoffMs;
  }

  /** How many unexpected exits fell within the last CRASH_WINDOW_MS. */
  get recentCrashes(): number {
    return this.exits.length;
  }

  /** Milliseconds of back-off left; 0 when a launch may go ahead. */
  backoffLeft(): number {
    return Math.max(0, this.backoffUntil - performance.now());
  }

  /** The user asked for a start: that overrides the back-off. */
  forgive(): void {
    this.backoffUntil = 0;
  }
}
