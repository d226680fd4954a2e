// Starting a service's command and stopping it again. The command runs through `sh -c` in a
// process group of its own, so a stop reaches the shell, the package runner, the dev server and
// its workers alike: SIGTERM to the group, SIGKILL once `stop_timeout` has passed; and to every
// process of the launch that left the group (process-tree.ts).

import { statSync } from 'node:fs';
import { createDebug } from './packages.js';
import { commandWithPort } from './config.js';
import { LaunchError } from './errors.js';
import { processStartTime, type ProcessId } from './process-group.js';
import { LaunchTree, watchTree } from './process-tree.js';
import type { ServiceLog } from './service-log.js';
import { spawnFromHelper, type Spawned } from './spawner.js';
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
  /** The shell's start time (see processStartTime), read before it could be reaped; undefined without /proc. */
  readonly started: string | undefined;
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

  /**
   * `started`: the shell's start time, read before it could be reaped (by the spawner process, whose
   * child it is: a zombie until that process's loop turns); read here when not given (terminal.ts).
   */
  constructor(pid: number, exited: Promise<ExitStatus>, started = processStartTime(pid)) {
    this.pid = pid;
    this.started = started;
    this.exited = exited.then((status) => (this.exitStatus = status));
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
 * Launches at once spawn one per turn of the event loop. A spawn used to block the event loop
 * until the new process exec'd, tens of milliseconds each while twenty dev servers boot on two
 * cores; it is a message to the spawner process now (spawner.ts), but each launch still does
 * some work on this thread (a bind probe, log lines, the message): one per turn, no turn carries
 * twenty of them, and connections are served in between.
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

/**
 * Spawns the service's command from the spawner process (see spawner.ts), whose replies bring
 * its output to `log` and its exit. Rejects with a LaunchError if it cannot start.
 */
export async function launchCommand(spec: LaunchSpec, log: ServiceLog): Promise<LaunchedProcess> {
  if (spec.cwd !== undefined && !isDirectory(spec.cwd)) {
    throw new LaunchError(spec.name, `cannot launch ${spec.name}: its cwd ${spec.cwd} is not a folder`);
  }
  const command = commandWithPort(spec.command, spec.port);
  let resolveExit: (status: ExitStatus) => void = () => {};
  const exited = new Promise<ExitStatus>((resolve) => (resolveExit = resolve));
  let spawned: Spawned;
  try {
    spawned = await spawnFromHelper({
      file: '/bin/sh',
      args: ['-c', command],
      cwd: spec.cwd,
      env: { ...process.env, PORT: String(spec.port), ...spec.env },
    }, { output: (chunk, stream) => log.write(chunk, stream), exit: resolveExit });
  } catch (err) {
    debug('%s could not be spawned: %s', spec.name, (err as Error).message);
    throw new LaunchError(spec.name, `cannot launch ${spec.name}: /bin/sh could not be started`);
  }
  debug('launched %s as pid %d: %s', spec.name, spawned.pid, command);
  return new LaunchedProcess(spawned.pid, exited, spawned.started);
}

/**
 * Runs a service's `stop` command the way its `command` runs (same cwd, env and port) and waits
 * for it, `timeoutMs` at most; its output goes to the service's log.
 */
export async function runStopCommand(spec: LaunchSpec & { stop: string }, log: ServiceLog, timeoutMs: number): Promise<void> {
  let process: LaunchedProcess;
  try {
    process = await launchCommand({ ...spec, command: spec.stop }, log);
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
