// One service's lifecycle: an explicit state, the transitions allowed between states in one table,
// and what is done to a service: ensureRunning, stop, start, restart. A launch in flight is
// cancelled through its AbortController, whose reason is a LaunchCancelledError; every wait inside
// a launch (dependencies, `delay`, readiness) takes that signal. Nothing compares tickets: a state
// not in the table is a bug, and says so.

import { createDebug } from './packages.js';
import { commandWithPort, configKey, type ServiceConfig } from './config.js';
import { abortable } from './abortable.js';
import { CrashHistory, CRASH_WINDOW_MS } from './crash-history.js';
import { UpstreamHosts } from './dial.js';
import { LaunchCancelledError, launchErrors, ReadinessTimeoutError, ServiceStoppedError, type CancelCause } from './errors.js';
import { describeExit, launchCommand, runStopCommand, spawnTurn, type ExitStatus, type LaunchedProcess } from './launch.js';
import type { LaunchRecord } from './launch-record.js';
import type { Log } from './log.js';
import { findFreePort, findPortOwner, portIsBindable, type PortOwner } from './port-owner.js';
import { groupAlive } from './process-group.js';
import { readinessOf, waitUntilReady, type ProbeConnection } from './readiness.js';
import type { ServiceLog } from './service-log.js';
import { ServiceUsage } from './service-usage.js';
import type { TerminalHost } from './terminal.js';

const debug = createDebug('norikae:service');

/** Lines of output on error pages. */
const LOG_TAIL_LINES = 30;

/**
 * - `stopped`: no process of ours; a request launches it.
 * - `held`: stopped by the user; requests get 503 until they start it.
 * - `launching`: waiting for dependencies, `delay` or readiness (clients wait with it).
 * - `ready`: its process runs and passed readiness.
 * - `stopping`: its process group is being stopped.
 * - `failed`: the last launch failed (exited early, timed out, could not start).
 * - `crashed`: it exited after it was ready, unasked.
 */
export type ServiceState = 'stopped' | 'held' | 'launching' | 'ready' | 'stopping' | 'failed' | 'crashed';

/** Every allowed transition. `ready → launching`: its port refused while the process runs, so readiness is waited for again. */
export const TRANSITIONS: { readonly [From in ServiceState]: readonly ServiceState[] } = {
  stopped: ['launching', 'held'],
  held: ['stopped'],
  launching: ['ready', 'failed', 'stopping', 'stopped', 'held'],
  ready: ['launching', 'stopping', 'crashed'],
  stopping: ['stopped', 'held'],
  failed: ['launching', 'stopping', 'stopped', 'held'],
  crashed: ['launching', 'stopping', 'stopped', 'held'],
};

/** What a service needs of the registry it lives in (the supervisor). */
export interface RuntimeContext {
  readonly log: Log;
  readonly record: LaunchRecord | undefined;
  /** Where `terminal = true` services run (tmux sessions). */
  readonly terminals: TerminalHost;
  /** The running config's file, for the start command of the 503 page. */
  configFile(): string;
  /** The service's output: its log file and recent lines. */
  serviceLog(runtime: ServiceRuntime): ServiceLog;
  /** Makes every service in `requires` accept connections; gives up when `signal` aborts. */
  startDependencies(runtime: ServiceRuntime, signal: AbortSignal): Promise<void>;
  /** Whether a running service requires this one (its dependent talks to it past norikae). */
  hasRunningDependent(runtime: ServiceRuntime): boolean;
  /** Its process started or ended: its dependencies' idle time depends on that. */
  processChanged(runtime: ServiceRuntime): void;
  /** Something shown changed: at once (`soon` false) or batched (connection counters). */
  changed(runtime: ServiceRuntime, soon?: boolean): void;
}

/** One launch: every waiting connection shares it; `controller` cancels it. */
interface Launch {
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

export class ServiceRuntime {
  state: ServiceState = 'stopped';
  /** Its current config; a reload replaces it (a running process keeps what it was launched with). */
  service: ServiceConfig;
  /** The port in use: the configured one, or one chosen at the first launch. */
  port: number | undefined;
  process: LaunchedProcess | undefined;
  /** Why the last launch failed, for status, the API and the dashboard; cleared by a good launch. */
  lastError: string | undefined;
  /** A process norikae did not start that held the port at the last launch attempt. */
  portHeldBy: PortOwner | undefined;
  readonly crashes = new CrashHistory();
  /** Its connections, their bytes, and the idle stop. */
  readonly usage: ServiceUsage;
  /** What the running process was launched with (see launchSignature). */
  launchedAs = '';
  /** A line of output matched the `ready.log` pattern since the last launch. */
  logMatched = false;
  log: ServiceLog | undefined;
  private launch: Launch | undefined;
  /** A cancelled launch that has not given up yet: the next one begins after it. */
  private cancelled: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  /** A spawn under way: settles once its process is `process` (or it failed). */
  private spawning: Promise<void> | undefined;
  /** Why the last stop was asked for, for the stop of a process that was spawning then. */
  private stopReason = 'stopped';
  /** Where `stopping` ends. */
  private afterStop: 'stopped' | 'held' = 'stopped';
  /** Where to dial it, the address that answered last first. */
  readonly hosts = new UpstreamHosts(() => this.service.upstream);
  /** The connection of the probe that found it ready, until a client takes it (see takeProbeConnection). */
  private probeConnection: ProbeConnection | undefined;

  constructor(
    service: ServiceConfig,
    private readonly context: RuntimeContext,
  ) {
    this.service = service;
    this.port = service.port;
    this.usage = new ServiceUsage({
      idleTimeout: () => this.service.idleTimeout,
      running: () => this.process !== undefined,
      hasRunningDependent: () => context.hasRunningDependent(this),
      idle: (seconds) => void this.stop('stopped', `idle for ${seconds} s`),
      changed: () => context.changed(this, true),
    });
  }

  get name(): string {
    return this.service.name;
  }

  /** Held by the user, or on the way there: requests do not launch it. */
  get held(): boolean {
    return this.state === 'held' || (this.state === 'stopping' && this.afterStop === 'held');
  }

  /** A stop in progress, to wait for before dialling (its process is going away). */
  get stopped(): Promise<void> | undefined {
    return this.stopping;
  }

  /** A launch in flight, or the spawn of a cancelled one (its process is about to be stopped). */
  get launching(): boolean {
    return this.launch !== undefined || this.spawning !== undefined;
  }

  /**
   * Resolves once the service is ready, launching it unless a launch is under way (which it
   * joins). `refused`: its port just refused a connection, so `ready` is not to be trusted.
   * `signal` only stops this caller's wait; the launch goes on for the others.
   */
  async ensureRunning(signal?: AbortSignal, refused = false): Promise<void> {
    for (;;) {
      if (this.held) throw new ServiceStoppedError(this.name, this.context.configFile());
      if (this.state === 'ready' && this.launch === undefined && !refused) return;
      const launch = this.launch ?? this.beginLaunch();
      try {
        await abortable(launch.done, signal);
        return;
      } catch (err) {
        if (!(err instanceof LaunchCancelledError) || signal?.aborted) throw err;
        // A restart replaced the launch, or a start followed the stop that cancelled it: its
        // clients follow the new one.
        if (err.replaced || (err.kind === 'held' && !this.held)) {
          refused = false;
          continue;
        }
        if (this.held) throw new ServiceStoppedError(this.name, this.context.configFile());
        throw err;
      }
    }
  }

  /**
   * The connection the readiness probe opened and left open, to the first client that asks after
   * a launch: it is spliced over it instead of connecting again. Once; undefined after that.
   */
  takeProbeConnection(): ProbeConnection | undefined {
    const probe = this.probeConnection;
    this.probeConnection = undefined;
    return probe?.socket.destroyed === false ? probe : undefined;
  }

  /** Launches it now (the user's start), overriding a hold and a crash-loop back-off. */
  async start(): Promise<void> {
    if (this.state === 'held') this.moveTo('stopped');
    this.afterStop = 'stopped';
    this.crashes.forgive();
    await this.ensureRunning();
  }

  /**
   * Cancels a launch in flight and stops the process group, if norikae launched one. `held`:
   * the user's stop, which sticks until they start it again.
   */
  async stop(cause: CancelCause, reason: string): Promise<void> {
    this.cancel(cause);
    this.stopReason = reason;
    const after = cause === 'held' ? 'held' : 'stopped';
    if (this.process === undefined && this.stopping === undefined && this.spawning === undefined) {
      // Nothing to stop: only a launch that had not spawned yet ends, or the hold is taken.
      if (after === 'held') this.moveTo('held');
      else if (this.state === 'launching') this.moveTo('stopped');
      return;
    }
    if (after === 'held' || this.state !== 'stopping') this.afterStop = after;
    this.moveTo('stopping');
    // Its process is on its way: it is stopped once it is there (or the spawn failed).
    if (this.spawning !== undefined) await this.spawning;
    await this.terminate(reason);
    if (this.state === 'stopping') this.moveTo(this.afterStop);
  }

  /** Stop, then start; `overtaken` (the user's stop, sent meanwhile) ends it between the two. */
  async restart(overtaken?: AbortSignal): Promise<void> {
    await this.stop('restarted', 'restart');
    overtaken?.throwIfAborted();
    await this.start();
  }

  /** Takes a reloaded config; a running process keeps its port (the new one applies at the next launch). */
  reconfigure(service: ServiceConfig): void {
    this.service = service;
    if (this.process === undefined) this.port = service.port ?? this.port;
  }

  private moveTo(next: ServiceState): void {
    if (next === this.state) return;
    if (!TRANSITIONS[this.state].includes(next)) {
      throw new Error(`${this.name}: no transition from ${this.state} to ${next} (a bug of norikae-splice)`);
    }
    debug('%s: %s → %s', this.name, this.state, next);
    this.state = next;
    this.context.changed(this);
  }

  private beginLaunch(): Launch {
    const controller = new AbortController();
    const done = this.run(controller.signal, this.cancelled).finally(() => {
      if (this.launch === launch) this.launch = undefined;
    });
    const launch: Launch = { controller, done };
    this.launch = launch;
    return launch;
  }

  /** Keeps the launch in flight from going on: every wait in it ends with a LaunchCancelledError. */
  private cancel(cause: CancelCause): void {
    const launch = this.launch;
    if (launch === undefined) return;
    this.launch = undefined;
    this.cancelled = launch.done.then(noop, noop);
    launch.controller.abort(new LaunchCancelledError(this.name, cause));
  }

  /** One launch: dependencies, then spawn (unless its process is still up), then readiness. */
  private async run(signal: AbortSignal, previous: Promise<void> | undefined): Promise<void> {
    // A cancelled launch gives up, and a stop in progress (a restart's, say) ends its process, before
    // this one looks at the process: it must not take a dying one for one that is still starting.
    await previous;
    if (this.stopping !== undefined) await this.stopping;
    signal.throwIfAborted();
    if (this.held) throw new ServiceStoppedError(this.name, this.context.configFile());
    this.moveTo('launching');
    try {
      await this.context.startDependencies(this, signal);
      await this.spawnAndWait(signal);
    } catch (err) {
      // A cancellation's state is set by whoever cancelled.
      if (signal.aborted) throw signal.reason;
      this.failed(err);
      throw err;
    }
    this.lastError = undefined;
    this.moveTo('ready');
    this.usage.armIdleTimer();
  }

  /** A launch that failed: said on stderr, in its log, and kept for status and the dashboard. */
  private failed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.lastError = message;
    if (!(err instanceof ReadinessTimeoutError)) this.context.log.warn(`${this.name} failed to start: ${message}`);
    (this.log ??= this.context.serviceLog(this)).report(`failed to start: ${message}`);
    if (this.state === 'launching') this.moveTo('failed');
  }

  private async spawnAndWait(signal: AbortSignal): Promise<void> {
    const { service } = this;
    const log = (this.log ??= this.context.serviceLog(this));
    let process = this.process;
    if (process !== undefined && process.exitStatus !== undefined) {
      // Its shell is gone but some of its group lives on without serving (`helper & server`
      // whose server died): clear it away, and count it as the crash it is.
      await this.terminate('not accepting connections');
      this.countCrash(process, process.exitStatus);
      process = undefined;
    }
    const backoff = this.crashes.backoffLeft();
    if (backoff > 0) {
      throw launchErrors.crashLoop(this.name, this.crashes.recentCrashes, CRASH_WINDOW_MS / 1000, Math.ceil(backoff / 1000), {
        exitCode: this.crashes.lastExit?.code, signal: this.crashes.lastExit?.signal, logTail: log.tail(LOG_TAIL_LINES),
      });
    }
    if (process === undefined) {
      this.port ??= service.port ?? await findFreePort();
      // Launches at once spawn one per turn (see spawnTurn); the bind probe resolves within the turn.
      await spawnTurn();
      // The full search for a holder only when the port cannot be bound (see portIsBindable).
      const bindable = await portIsBindable(this.port);
      signal.throwIfAborted();
      if (bindable) this.portHeldBy = undefined;
      else this.checkPortIsFree();
      // A stop that comes while the spawner process spawns waits for the process (see stop), and
      // the launch stops it before giving up: whatever was started is stopped.
      const spawned = this.spawn(log);
      this.spawning = spawned.then(noop, noop);
      try {
        process = await spawned;
      } finally {
        this.spawning = undefined;
      }
      if (signal.aborted) {
        // Whichever of the two comes first begins the stop, with the stop's reason.
        await this.terminate(this.stopReason);
        throw signal.reason;
      }
    } else {
      debug('%s: port refused while pid %d runs; waiting for it', this.name, process.pid);
    }
    const started = performance.now();
    const readiness = await waitUntilReady(readinessOf(service, { port: this.port!, hosts: this.hosts.list(), process, logMatched: () => this.logMatched, signal }));
    switch (readiness.state) {
      case 'cancelled':
        throw signal.reason;
      case 'ready':
        if (readiness.upstream !== undefined) this.offerProbeConnection(readiness.upstream);
        this.context.log.info(`${this.name} ready on :${this.port} in ${((performance.now() - started) / 1000).toFixed(2)} s`);
        return;
      case 'exited':
        throw launchErrors.exitedEarly(this.name, describeExit(readiness.status), this.port!, {
          exitCode: readiness.status.code, signal: readiness.status.signal, logTail: log.tail(LOG_TAIL_LINES),
        });
      case 'timeout': {
        const failing = readiness.failing.join('; ');
        this.context.log.warn(`${this.name} was not ready within ${service.readyTimeout} s: ${failing}`);
        await this.terminate('not ready in time');
        throw launchErrors.notReady(this.name, service.readyTimeout, failing, log.tail(LOG_TAIL_LINES));
      }
    }
  }

  /**
   * Keeps the probe's connection for the clients waiting on this launch: they resume, and the first
   * takes it, in this same turn of the event loop (promise reactions). Nobody waiting (a start
   * from the dashboard, a dependency): it is closed on the next turn.
   */
  private offerProbeConnection(probe: ProbeConnection): void {
    this.probeConnection?.socket.destroy();
    this.probeConnection = probe;
    setImmediate(() => {
      if (this.probeConnection !== probe) return;
      this.probeConnection = undefined;
      probe.socket.destroy();
    });
  }

  /**
   * The port was refused on every address, yet something may hold it (bound, or listening
   * elsewhere): then the child would only fail with EADDRINUSE in its own log. Name the holder.
   */
  private checkPortIsFree(): void {
    const owner = findPortOwner(this.port!);
    this.portHeldBy = owner;
    if (owner !== undefined) throw launchErrors.portHeld(this.name, this.port!, owner);
  }

  /** Spawns its command; resolves once the process runs and is this service's (`this.process`). */
  private async spawn(log: ServiceLog): Promise<LaunchedProcess> {
    const { service } = this;
    const sinceIdleStop = performance.now() - this.usage.idleStoppedAt;
    if (sinceIdleStop < service.idleCooldown * 1000) {
      this.context.log.info(`${this.name} is launched again ${(sinceIdleStop / 1000).toFixed(1)} s after its idle stop: a client reconnected `
        + '(hot-reload clients do that); raise idle_timeout if it keeps coming back');
    }
    this.logMatched = false;
    const command = commandWithPort(service.command!, this.port!);
    this.context.log.info(`launching ${this.name}: ${command}${service.cwd ? ` (in ${service.cwd})` : ''}`);
    log.note(`launching on port ${this.port}: ${command}`);
    const spec = { name: this.name, command: service.command!, cwd: service.cwd, env: service.env, port: this.port! };
    const process = service.terminal ? this.context.terminals.launch(spec, log) : await launchCommand(spec, log);
    this.process = process;
    this.launchedAs = launchSignature(service);
    this.context.record?.launched(this.name, process);
    this.context.processChanged(this);
    void process.exited.then((status) => this.onExit(process, status));
    return process;
  }

  private onExit(process: LaunchedProcess, status: ExitStatus): void {
    this.log?.note(`exited ${describeExit(status)}`);
    if (process.stopRequested) {
      this.crashes.stopped(status);
      return;
    }
    if (status.code === 0 && this.service.stop !== undefined) {
      // Started in the background (a daemon, a container): its `stop` command stops it.
      this.context.log.info(`${this.name}'s command finished; it runs in the background until its stop command`);
      return;
    }
    if (groupAlive(process.pid)) {
      debug('%s: shell %d exited, its group lives on', this.name, process.pid);
      return;
    }
    this.context.log.info(`${this.name} exited ${describeExit(status)}`);
    // Its group is gone, but what left the group (setsid) may not be: that goes too.
    if (process.tree.alive().length > 0) void process.stop(this.service.stopTimeout * 1000).catch(noop);
    this.forget(process);
    this.countCrash(process, status);
    // During a launch, readiness sees the exit and fails it.
    if (this.state === 'ready') this.moveTo('crashed');
    else this.context.changed(this);
  }

  private countCrash(process: LaunchedProcess, status: ExitStatus): void {
    const pause = this.crashes.crashed(status, performance.now() - process.launchedAt);
    if (pause !== undefined) {
      this.context.log.warn(`${this.name} exited ${this.crashes.recentCrashes} times within ${CRASH_WINDOW_MS / 1000} s; not relaunching it for ${pause / 1000} s`);
    }
  }

  /** Stops the process group, if there is one, without a change of state (see stop). */
  private terminate(reason: string): Promise<void> {
    this.usage.stopIdleTimer();
    const process = this.process;
    if (process === undefined) return this.stopping ?? Promise.resolve();
    if (this.stopping === undefined) {
      this.context.log.info(`stopping ${this.name} (${reason})`);
      this.log?.note(`stopping (${reason})`);
      const { service } = this;
      const timeoutMs = service.stopTimeout * 1000;
      const stopCommand = service.stop === undefined ? undefined : () => runStopCommand({
        name: service.name, command: service.command!, stop: service.stop!, cwd: service.cwd, env: service.env, port: this.port!,
      }, this.log!, timeoutMs);
      this.stopping = process.stop(timeoutMs, stopCommand).catch((err: unknown) => {
        // EPERM (a command that changed its user), a failing `stop` command: say so; an idle
        // stop or an exit has nobody else to tell, and a rejection here would end norikae.
        this.context.log.warn(`stopping ${this.name} failed: ${(err as Error).message}`);
      }).finally(() => {
        this.stopping = undefined;
        this.forget(process);
      });
    }
    return this.stopping;
  }

  /** Drops a process that is gone (or stopped) from the state and the launch record. */
  private forget(process: LaunchedProcess): void {
    if (this.process === process) {
      this.process = undefined;
      // A port edited while it ran applies from the next launch.
      this.port = this.service.port ?? this.port;
      this.context.processChanged(this);
    }
    this.context.record?.ended(process);
    this.usage.stopIdleTimer();
  }
}

/** What a launch depends on: when it changes while the process runs, a restart would apply it. */
export function launchSignature(service: ServiceConfig): string {
  return configKey([service.command, service.cwd, service.env, service.port, service.upstream, service.stop, service.terminal]);
}


function noop(): void {}
