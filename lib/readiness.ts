// Deciding a launch is ready. By default the port accepts a connection; a service may ask for an
// HTTP health check (any status below 500) or a line of its output matching a pattern instead,
// or several of these (all must hold). We poll every millisecond or few (pollIntervalMs) instead
// of sleeping a fixed time, so a server that binds in 300 ms is served in about 300 ms. `delay` (Norikae's
// key) only postpones the first check.

import { request } from 'node:http';
import type { Socket } from 'node:net';
import type { ReadyChecks, ServiceConfig } from './config.js';
import { dial } from './dial.js';
import type { ExitStatus, LaunchedProcess } from './launch.js';
import { groupAlive } from './process-group.js';
import { startTimer } from './timer.js';

/**
 * The port is asked every millisecond while most dev servers are still starting, then less and
 * less often, down to every 5 ms from 2.5 s on: the first response lands close behind the bind of
 * a fast server, while a slow one (or twenty launched at once) is not asked a thousand times a
 * second for long. A refused connect costs Node ~0.1 ms of CPU.
 */
const FAST_POLL_MS = 1;
const FAST_POLL_FOR_MS = 500;
const SLOW_POLL_MS = 5;
const BACKOFF_OVER_MS = 2000;
/** A health check is a request the starting server has to answer: ask less often. */
const HTTP_POLL_INTERVAL_MS = 50;
/** How often the group of a shell that exited is looked at (a walk of /proc). */
const GROUP_POLL_MS = 50;

/**
 * Launches polling their ports at once share a budget of about 4,000 rounds a second, each the
 * same for every launch (a round tries each address until one accepts: up to two connects, ~75 µs
 * of CPU each when refused, so up to ~0.6 of a core): twenty services launched together by twenty
 * first requests each polled every millisecond, and the probes alone took more than norikae's
 * one core. Twenty at once are each asked every 5 ms; in traces of that bench no launch was
 * starved of probes (its first round after the bind accepted): what delayed them was the event
 * loop blocked by spawns (now made by the spawner process, spawner.ts) and walks of /proc
 * (process-tree.ts).
 */
const SHARED_POLL_MS = 0.25;
/** Launches waiting on a `tcp` check right now (see SHARED_POLL_MS). */
let tcpPollers = 0;

/**
 * The wait before the next check, `elapsedMs` after the first, while `pollers` launches poll
 * (an HTTP health check: always HTTP_POLL_INTERVAL_MS).
 */
export function pollIntervalMs(elapsedMs: number, http: boolean, pollers = 1): number {
  if (http) return HTTP_POLL_INTERVAL_MS;
  const backedOff = elapsedMs <= FAST_POLL_FOR_MS
    ? FAST_POLL_MS
    : Math.min(SLOW_POLL_MS, FAST_POLL_MS + ((elapsedMs - FAST_POLL_FOR_MS) / BACKOFF_OVER_MS) * (SLOW_POLL_MS - FAST_POLL_MS));
  return Math.max(backedOff, pollers * SHARED_POLL_MS);
}

export interface ReadinessCheck {
  /** Addresses the service may listen on, tried in order (127.0.0.1 and ::1 by default). */
  hosts: readonly string[];
  port: number;
  checks: ReadyChecks;
  /** The Host header of the HTTP health check. */
  httpHost: string;
  /** Whether a line of output has matched `checks.log` yet. */
  logMatched: () => boolean;
  /** Wait this long before the first check. */
  delayMs: number;
  /** Give up after this long, counted from the start (delay included). */
  timeoutMs: number;
  /** Settles when the launched process (the shell) exits: then waiting is pointless, unless its group lives on. */
  exited: Promise<ExitStatus>;
  /**
   * Whether processes the launch started live on after the shell exited with 0 (`server &`):
   * then the exit is not the end, and readiness is waited for until `timeoutMs`.
   */
  livesOn: () => boolean;
  /** Aborted when the launch is cancelled (stopped, restarted, removed): ends every wait at once. */
  signal: AbortSignal;
}

/** A connection a probe opened to the service: the first client's upstream (see waitUntilReady). */
export interface ProbeConnection {
  host: string;
  socket: Socket;
}

export type Readiness =
  /**
   * `upstream`: the probe's connection that found the port accepting, left open (set like a dial's,
   * dial.ts) so the first client is spliced over it instead of connecting again; whoever takes it
   * owns it, and it must be destroyed if nobody does.
   */
  | { state: 'ready'; upstream: ProbeConnection | undefined }
  | { state: 'exited'; status: ExitStatus }
  | { state: 'cancelled' }
  /** `failing` says which checks still did not hold, and how, for the 504 page. */
  | { state: 'timeout'; failing: string[] };

/** What a launch of `service` waits for: its `ready` checks, `delay` and `ready_timeout`, on `port`. */
export function readinessOf(service: ServiceConfig, launch: {
  port: number;
  hosts: readonly string[];
  process: LaunchedProcess;
  logMatched: () => boolean;
  signal: AbortSignal;
}): ReadinessCheck {
  const { process, ...wait } = launch;
  return {
    ...wait,
    checks: service.ready,
    httpHost: service.hosts.find((host) => !host.startsWith('*.')) ?? 'localhost',
    delayMs: service.delay * 1000,
    timeoutMs: service.readyTimeout * 1000,
    livesOn: () => groupAlive(process.pid),
    // A service with a `stop` command may start in the background: its shell exiting with 0 is fine.
    exited: service.stop === undefined ? process.exited : process.exited.then((status) => (status.code === 0 ? never() : status)),
  };
}

export async function waitUntilReady(check: ReadinessCheck): Promise<Readiness> {
  const { signal } = check;
  // Monotonic: a clock step must not stretch or cut the wait.
  const deadline = performance.now() + check.timeoutMs;
  let exit: ExitStatus | undefined;
  let wake: (() => void) | undefined;
  // One subscription each wakes a sleeping poll loop as soon as the process exits or the launch is
  // cancelled (a race per poll would leave a reaction every few milliseconds while the service runs).
  void check.exited.then((status) => {
    exit = status;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    // Any length: a `delay` or ready_timeout of weeks must not end in 1 ms (see timer.ts).
    const timer = startTimer(ms, resolve);
    wake = () => {
      timer.clear();
      resolve();
    };
  });
  let counted = false;
  try {
    let failing: string[] = [];
    const http = check.checks.http !== undefined;
    /** The shell exited and nothing of its group is left: nothing can become ready. Once the shell is gone, the group is looked at every poll. */
    let orphaned = false;
    // A shell that exits with 0 while its group lives on put its server in the background; one
    // that fails (a code, a signal) is the failure of what it ran, whatever it left behind.
    const ended = (): boolean => exit !== undefined && (exit.code !== 0 || (orphaned ||= !check.livesOn()));
    // `delay` postpones the first check; an exit (of the whole group) or a cancellation ends it early.
    const delayEnd = performance.now() + Math.min(check.delayMs, check.timeoutMs);
    while (!ended() && !signal.aborted && delayEnd > performance.now()) {
      // After the shell's exit, the group is looked at again every so often; before, its exit wakes the sleep.
      await sleep(exit === undefined ? delayEnd - performance.now() : Math.min(GROUP_POLL_MS, delayEnd - performance.now()));
    }
    const firstCheck = performance.now();
    if (!http) tcpPollers++;
    counted = !http;
    for (;;) {
      // Before the exit: a stop kills the process, and the stop, not the exit, is why it ended.
      if (signal.aborted) return { state: 'cancelled' };
      if (ended()) return { state: 'exited', status: exit! };
      const remaining = deadline - performance.now();
      if (remaining <= 0) return { state: 'timeout', failing };
      const { failing: round, upstream } = await failingChecks(check, Math.min(remaining, 1000));
      if (round.length === 0 && !signal.aborted) return { state: 'ready', upstream };
      upstream?.socket.destroy();
      // A round the deadline cut short says "no answer" where the one before heard a 503, say:
      // the 504 page gives the reasons of the last round that ran in full.
      if (performance.now() < deadline || failing.length === 0) failing = round;
      // A shell that left its server in the background (`server &`): the group is read from /proc, so not every few ms.
      const interval = pollIntervalMs(performance.now() - firstCheck, http, tcpPollers);
      const pause = exit === undefined ? interval : Math.max(interval, GROUP_POLL_MS);
      if (!signal.aborted && !ended()) await sleep(Math.min(pause, Math.max(0, deadline - performance.now())));
    }
  } finally {
    if (counted) tcpPollers--;
    signal.removeEventListener('abort', onAbort);
  }
}

/** The checks that do not hold right now, each described for a person, and the probe's open connection. */
async function failingChecks(check: ReadinessCheck, timeoutMs: number): Promise<{ failing: string[]; upstream: ProbeConnection | undefined }> {
  const { checks, port } = check;
  const failing: string[] = [];
  if (checks.log !== undefined && !check.logMatched()) failing.push(`no line of output matched /${checks.log.source}/ yet`);
  // One probe of the port serves both the tcp check and the address of the health check.
  const upstream = checks.tcp || checks.http !== undefined ? await acceptingConnection(check.hosts, port, timeoutMs) : undefined;
  if (checks.tcp && upstream === undefined) failing.push(`port ${port} did not accept connections`);
  if (checks.http !== undefined) {
    const status = upstream === undefined ? undefined : await httpStatus(upstream.host, port, checks.http, check.httpHost, timeoutMs);
    if (status === undefined || status >= 500) {
      failing.push(`GET ${checks.http} ${status === undefined ? 'got no answer' : `answered ${status}`}`);
    }
  }
  return { failing, upstream };
}

/** The first of `hosts` whose `port` accepts a connection, if any. */
export async function acceptingHost(hosts: readonly string[], port: number, timeoutMs: number): Promise<string | undefined> {
  const accepted = await acceptingConnection(hosts, port, timeoutMs);
  accepted?.socket.destroy();
  return accepted?.host;
}

/**
 * A connection to the first of `hosts` whose `port` accepts, if any: a dial like any upstream's
 * (dial.ts: its options, its self-connect check, its loop guard), since it may become one.
 */
async function acceptingConnection(hosts: readonly string[], port: number, timeoutMs: number): Promise<ProbeConnection | undefined> {
  for (const host of hosts) {
    const socket = await dial(host, port, timeoutMs).catch(() => undefined);
    if (socket !== undefined) return { host, socket };
  }
  return undefined;
}

/** The status of `GET path`, or undefined when there is no answer in time. */
function httpStatus(host: string, port: number, path: string, hostHeader: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, headers: { host: hostHeader, connection: 'close' }, agent: false }, (res) => {
      clearTimeout(timer);
      res.resume();
      resolve(res.statusCode);
    });
    // A deadline, not req.setTimeout: that one only fires on silence, and a server that sends
    // its head a byte at a time would keep the launch waiting past ready_timeout.
    const timer = setTimeout(() => req.destroy(), timeoutMs);
    req.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    req.end();
  });
}

/** A promise that never settles: an exit that does not end the wait. */
function never(): Promise<never> {
  return new Promise(() => {});
}
