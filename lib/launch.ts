// Starting a service's command and stopping it again. The command runs through `sh -c` in a
// process group of its own, so a stop reaches the shell, the package runner, the dev server and
// its workers alike: SIGTERM to the group, SIGKILL once `stop_timeout` has passed; and to every
// process of the launch that left the group (process-tree.ts).

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { createDebug } from './packages.js';
import { commandWithPort } from './config.js';
import { LaunchError } from './errors.js';
import { processStartTime, type ProcessId } from './process-group.js';
import { LaunchTree, watchTree } from './process-tree.js';
import type { ServiceLog } from './service-log.js';
import { startTimer } from './timer.js';

const debug = createDebug('norikae:launch');

export interface LaunchSpec {
  name: string;
  /** The command as configured; `{port}` is replaced by `port`. */
  command: string;
  cwd: string | undefined;
  env: Record<string, string>;
  port: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  error?: string;
}

export class LaunchedProcess {
  /** Also the process group id: the shell leads its group. */
  readonly pid: number;
  /** Epoch ms, for people (the dashboard, `status`). */
  readonly startedAt = Date.now();
  /** performance.now() at the spawn: how long it ran, whatever the wall clock does. */
  readonly launchedAt = performance.now();
  /** Settles once when the shell has exited (its group may live on; `stop` sees to that). */
  readonly exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  /** True once we asked it to stop, so its exit is not taken for a crash. */
  stopRequested = false;
  /** Every process it started, those that left its group (`setsid`) included: walked once a second while it runs. */
  readonly tree: LaunchTree;
  /** Told of each process of the launch seen for the first time (the launch record keeps them). */
  onProcessesSeen: (ids: ProcessId[]) => void = () => {};
  private readonly unwatch: () => void;

  constructor(pid: number, exited: Promise<ExitStatus>) {
    this.pid = pid;
    this.exited = exited.then((status) => (this.exitStatus = status));
    // Read before the shell can be reaped: it is our child, and a zombie until the event loop turns.
    const started = processStartTime(pid);
    this.tree = new LaunchTree(pid, started === undefined ? [] : [{ pid, started }], (ids) => this.onProcessesSeen(ids));
    this.unwatch = watchTree(this.tree);
  }

  /** SIGKILL to all of it at once: the group and every process of it that left the group. */
  killNow(): void {
    this.tree.signal('SIGKILL');
  }

  /**
   * SIGTERM to the whole group, SIGKILL after `timeoutMs`; resolves when no live member is left.
   * A service's own `stop` command (`stopCommand`) runs first; signals only clear up after it.
   */
  async stop(timeoutMs: number, stopCommand?: () => Promise<void>): Promise<void> {
    this.stopRequested = true;
    if (stopCommand !== undefined) await stopCommand();
    debug('stopping group %d', this.pid);
    try {
      await this.tree.stop(timeoutMs);
    } finally {
      this.unwatch();
    }
  }
}

/**
 * Launches at once spawn one per turn of the event loop. A spawn blocks the event loop until the
 * new process has run far enough to exec its shell, and while twenty dev servers boot on two
 * cores that is tens of milliseconds each: twenty first requests, each launching a service,
 * spawned all twenty in one turn, and no probe, accept or splice ran for seconds. One per turn,
 * the services launched first are probed and served between the later spawns.
 */
const spawnQueue: (() => void)[] = [];
let spawnTurns: NodeJS.Immediate | undefined;

/** Resolves on the turn this caller may spawn on: the next one, or a later one while others wait. */
export function spawnTurn(): Promise<void> {
  return new Promise((resolve) => {
    spawnQueue.push(resolve);
    spawnTurns ??= setImmediate(nextSpawn);
  });
}

function nextSpawn(): void {
  spawnQueue.shift()!();
  spawnTurns = spawnQueue.length > 0 ? setImmediate(nextSpawn) : undefined;
}

/** Spawns the service's command; output goes to `log`. Throws LaunchError if it cannot start. */
export function launchCommand(spec: LaunchSpec, log: ServiceLog): LaunchedProcess {
  if (spec.cwd !== undefined && !isDirectory(spec.cwd)) {
    throw new LaunchError(spec.name, `cannot launch ${spec.name}: its cwd ${spec.cwd} is not a folder`);
  }
  const command = commandWithPort(spec.command, spec.port);
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: spec.cwd,
    env: { ...process.env, PORT: String(spec.port), ...spec.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn reports this failure asynchronously too; the listener keeps it from being thrown.
    child.once('error', () => {});
    throw new LaunchError(spec.name, `cannot launch ${spec.name}: /bin/sh could not be started`);
  }
  child.stdout.on('data', (chunk: Buffer) => log.write(chunk, 'stdout'));
  child.stderr.on('data', (chunk: Buffer) => log.write(chunk, 'stderr'));
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, error: err.message }));
    child.once('exit', (code, signal) => {
      // The last words of a failing server may still be in the pipes: give them a moment.
      const timer = setTimeout(() => resolve({ code, signal }), 100);
      child.once('close', () => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  });
  debug('launched %s as pid %d: %s', spec.name, child.pid, command);
  return new LaunchedProcess(child.pid, exited);
}

/**
 * Runs a service's `stop` command the way its `command` runs (same cwd, env and port) and waits
 * for it, `timeoutMs` at most; its output goes to the service's log.
 */
export async function runStopCommand(spec: LaunchSpec & { stop: string }, log: ServiceLog, timeoutMs: number): Promise<void> {
  let process: LaunchedProcess;
  try {
    process = launchCommand({ ...spec, command: spec.stop }, log);
  } catch (err) {
    log.note(`the stop command could not run: ${(err as Error).message}`);
    return;
  }
  let timer = { clear: () => {} };
  // Any length (see timer.ts), and cleared once the command is done: a long stop_timeout must not keep norikae alive.
  const outcome = await Promise.race([process.exited, new Promise<undefined>((resolve) => {
    timer = startTimer(timeoutMs, () => resolve(undefined));
  })]).finally(() => timer.clear());
  if (outcome === undefined) {
    log.note(`the stop command did not finish within ${timeoutMs / 1000} s`);
    await process.stop(1000);
  } else if (outcome.code !== 0) {
    log.note(`the stop command exited with code ${outcome.code}`);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** How a process ended, in words: `with code 1`, `on signal SIGTERM`, `without starting (…)`. */
export function describeExit(status: ExitStatus): string {
  if (status.error !== undefined) return `without starting (${status.error})`;
  if (status.signal !== null) return `on signal ${status.signal}`;
  // A terminal service's shell stopped by a signal to its group says neither (see terminal.ts).
  if (status.code === null) return 'on a signal';
  return `with code ${status.code}`;
}
