// What the API, the dashboard page and the CLI know of a service: a plain type with no imports,
// so the page's browser script (lib/dashboard/dashboard.ts) checks against the same one.

/** A service as the dashboard, the API and the CLI see it. */
export interface ServiceInfo {
  name: string;
  hosts: string[];
  /** Raw TCP listeners, as `host:port`. */
  listen: string[];
  port: number | null;
  state: 'stopped' | 'starting' | 'running' | 'failed' | 'crashed';
  pid: number | null;
  /** Epoch ms of the running process's launch. */
  startedAt: number | null;
  connections: number;
  /** Bytes from clients to the service, and back, over all connections so far. */
  bytesIn: number;
  bytesOut: number;
  /** The last exit of its process: code or signal, and when (epoch ms). */
  lastExit: { code: number | null; signal: string | null; at: number } | null;
  /** Why the last launch failed (it could not start, exited early, timed out); null after a good one. */
  lastError: string | null;
  command: string | null;
  stoppedByUser: boolean;
  /** The config changed how it is launched while it runs: a restart would apply it. */
  pendingRestart: boolean;
  /** A process norikae did not start that held the port at the last launch attempt. */
  portHeldBy: { pid: number; command: string } | null;
  /**
   * Grows with every ServiceInfo made: of two that arrive out of order (an event and the answer to
   * a POST), the one with the larger sequence is the newer. Compared within one `instance` only.
   */
  sequence: number;
  /** Names this run of norikae-splice: a restarted one counts `sequence` anew. */
  instance: string;
}
