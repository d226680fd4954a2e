// The launcher: reaching a service's upstream, launching it when nothing listens there. One state
// per service holds its process, the single launch every waiting connection shares, its open
// connections (for the idle stop) and its recent exits (for the crash-loop back-off).

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import createDebug from 'debug';
import { DEFAULT_STOP_TIMEOUT, formatAddress, type Config, type ServiceConfig } from './config.js';
import { DEFAULT_UPSTREAM_HOST, dialFirst } from './dial.js';
import { ControlError, LaunchCancelledError, LaunchError, ReadinessTimeoutError, ServiceStoppedError, UpstreamConnectError } from './errors.js';
import { launchCommand, runStopCommand, type ExitStatus, type LaunchedProcess } from './launch.js';
import type { LaunchRecord } from './launch-record.js';
import { type Log, streamLog } from './log.js';
import { groupAlive, signalGroup } from './process-group.js';
import { findPortOwner, type PortOwner } from './port-owner.js';
import { acceptingHost, waitUntilReady } from './readiness.js';
import type { UpstreamConnector } from './server.js';
import { ServiceLog } from './service-log.js';

const debug = createDebug('norikae:supervisor');

/** This many exits within CRASH_WINDOW_MS make a crash loop. */
const CRASH_LIMIT = 3;
const CRASH_WINDOW_MS = 30_000;
/** The first pause after a crash loop; it doubles while the loop goes on. */
const BACKOFF_START_MS = 5_000;
const BACKOFF_MAX_MS = 60_000;
/** Lines of output on error pages. */
const LOG_TAIL_LINES = 30;

export interface SupervisorOptions {
  log?: Log;
  /** Also print every line the services write, prefixed with their name. */
  echoOutput?: boolean;
  /** Where launched process groups are recorded for orphan clean-up; none if undefined. */
  record?: LaunchRecord;
}

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
  lastExit: { code: number | null; signal: string | null; at: number } | null;
  command: string | null;
  stoppedByUser: boolean;
  /** The config changed how it is launched while it runs: a restart would apply it. */
  pendingRestart: boolean;
  /** A process norikae did not start that held the port at the last launch attempt. */
  portHeldBy: PortOwner | null;
  /**
   * Grows with every ServiceInfo made: of two that arrive out of order (an event and the answer to
   * a POST), the one with the larger sequence is the newer. Compared within one `instance` only.
   */
  sequence: number;
  /** Names this run of norikae-splice: a restarted one counts `sequence` anew. */
  instance: string;
}

/** How often at most a service's connection counters are announced to listeners. */
const UPDATE_INTERVAL_MS = 250;

/**
 * Emits `service` (ServiceInfo) whenever a service changes, `log` ({ name, line }) for every line
 * a service prints, and `config` when a reload added, removed or changed services; the dashboard
 * streams all three.
 */
export class ServiceSupervisor extends EventEmitter implements UpstreamConnector {
  private readonly runtimes = new Map<string, ServiceRuntime>();
  /** Stops of services a reload removed, still in progress. */
  private readonly removals = new Set<Promise<unknown>>();
  private infoSequence = 0;
  private readonly instance = randomUUID();
  private readonly logDir: string;
  private readonly log: Log;
  private config: Config;

  constructor(
    config: Config,
    private readonly options: SupervisorOptions = {},
  ) {
    super();
    this.config = config;
    this.logDir = config.logDir;
    this.log = options.log ?? streamLog();
    for (const service of config.services) this.runtimes.set(service.name, new ServiceRuntime(service));
  }

  /** Stops what a previous norikae launched and could not stop (it was SIGKILLed). */
  async cleanOrphans(): Promise<void> {
    // The service's stop_timeout while it is still configured, else the default.
    const stopTimeoutMs = (name: string): number => (this.runtimes.get(name)?.service.stopTimeout ?? DEFAULT_STOP_TIMEOUT) * 1000;
    const stopped = await this.options.record?.cleanOrphans(stopTimeoutMs, ({ service, pids }) => {
      this.log.info(`stopping ${service} (pid ${pids.join(', ')}), left running by a previous norikae-splice`);
    }) ?? [];
    if (stopped.length > 0) this.log.info(`stopped what the previous norikae-splice left running (${stopped.map(({ service }) => service).join(', ')})`);
  }

  async connect(target: ServiceConfig): Promise<Socket> {
    const runtime = this.runtimes.get(target.name);
    if (runtime === undefined) throw new ControlError(404, `no service named ${target.name}`);
    // Awaited only when set: an await costs a turn of the microtask queue on every connection.
    if (runtime.stopping !== undefined) await runtime.stopping;
    if (runtime.launching !== undefined) await this.launched(runtime, runtime.launching);
    // The runtime holds the current config of the service, which a reload may have changed.
    const { service } = runtime;
    if (runtime.port !== undefined) {
      try {
        return this.track(runtime, await this.dialService(runtime));
      } catch (err) {
        if (service.command === undefined || !(err instanceof UpstreamConnectError) || err.reason !== 'ECONNREFUSED') throw err;
      }
    }
    // Connect first, launch only when refused: a server the user started by hand is simply used.
    if (runtime.stoppedByUser) throw new ServiceStoppedError(service.name, this.config.file);
    await this.launched(runtime, this.ensureLaunched(runtime));
    return this.track(runtime, await this.dialService(runtime));
  }

  /** Connects to the service's port, on the address that worked last time first. */
  private async dialService(runtime: ServiceRuntime): Promise<Socket> {
    const { socket, host } = await dialFirst(upstreamHosts(runtime), runtime.port!, this.config.connectTimeout * 1000);
    runtime.lastHost = host;
    return socket;
  }

  /** Every service, in config order. */
  list(): ServiceInfo[] {
    return this.config.services.map((service) => this.info(service.name)!);
  }

  info(name: string): ServiceInfo | undefined {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) return undefined;
    const { service, process } = runtime;
    let bytesIn = runtime.bytesIn;
    let bytesOut = runtime.bytesOut;
    for (const upstream of runtime.upstreams) {
      bytesIn += upstream.bytesWritten;
      bytesOut += upstream.bytesRead;
    }
    const backingOff = Date.now() < runtime.backoffUntil;
    return {
      name,
      hosts: service.hosts,
      listen: service.listen.map((address) => formatAddress(address)),
      port: runtime.port ?? null,
      state: runtime.launching ? 'starting' : process ? 'running' : backingOff ? 'crashed' : runtime.failed ? 'failed' : 'stopped',
      pid: process?.pid ?? null,
      startedAt: process?.startedAt ?? null,
      connections: runtime.upstreams.size,
      bytesIn,
      bytesOut,
      lastExit: runtime.lastExit ?? null,
      command: service.command ?? null,
      stoppedByUser: runtime.stoppedByUser,
      pendingRestart: process !== undefined && runtime.launchedAs !== launchSignature(service),
      portHeldBy: runtime.portHeldBy ?? null,
      sequence: ++this.infoSequence,
      instance: this.instance,
    };
  }

  /** The last `lines` lines a service printed. */
  logTail(name: string, lines: number): string[] {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) throw new ControlError(404, `no service named ${name}`);
    return runtime.log?.tail(lines) ?? [];
  }

  /** Launches a service now (from the dashboard or the CLI), and lets requests launch it again. */
  async start(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    // A stop that cancelled a launch still in flight, then this start: its clients wait for this one.
    if (runtime.launching !== undefined && runtime.launchTicket !== runtime.cancelledLaunches) runtime.cancelReplaced = true;
    runtime.stoppedByUser = false;
    runtime.backoffUntil = 0;
    await runtime.stopping;
    if (runtime.process === undefined || runtime.launching) {
      await this.ensureLaunched(runtime);
    }
    this.announce(runtime);
    return this.info(name)!;
  }

  /** Stops a service and keeps it stopped: requests for it get 503 until it is started again. */
  async stopByUser(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    if (runtime.process === undefined && runtime.launching === undefined && runtime.port !== undefined
      && await acceptingHost(upstreamHosts(runtime), runtime.port, 1000) !== undefined) {
      // A server started by hand is only forwarded to; "stopped" would be a lie while it answers.
      const owner = findPortOwner(runtime.port);
      throw new ControlError(409, `${name} was not started by norikae-splice: ${owner ? `pid ${owner.pid} (${owner.command})` : 'a process of its own'} `
        + `listens on port ${runtime.port}. Stop it where it was started.`);
    }
    runtime.stoppedByUser = true;
    this.cancelLaunch(runtime, 'stopped by you');
    await this.stop(runtime, 'stopped by you');
    this.announce(runtime);
    return this.info(name)!;
  }

  async restart(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    this.cancelLaunch(runtime, 'restarted', true);
    await this.stop(runtime, 'restart');
    return this.start(name);
  }

  /**
   * Takes a new config: added services route at once, removed ones are stopped, a changed one
   * keeps running and uses its new settings from its next launch (its port too: the running
   * process listens on the old one). Emits `config` once the table has changed, for the dashboard.
   */
  async reconfigure(config: Config): Promise<void> {
    this.config = config;
    const names = new Set(config.services.map((service) => service.name));
    const removed = [...this.runtimes.values()].filter((runtime) => !names.has(runtime.service.name));
    for (const service of config.services) {
      const runtime = this.runtimes.get(service.name);
      if (runtime === undefined) {
        this.runtimes.set(service.name, new ServiceRuntime(service));
        continue;
      }
      runtime.service = service;
      if (runtime.process === undefined) runtime.port = service.port ?? runtime.port;
    }
    for (const runtime of removed) this.runtimes.delete(runtime.service.name);
    for (const runtime of this.runtimes.values()) {
      // Kept for a dependent that may no longer require it (or be there at all).
      if (runtime.heldByDependent) this.armIdleTimer(runtime);
      this.announce(runtime);
    }
    this.emit('config');
    const removals = Promise.all(removed.map(async (runtime) => {
      this.cancelLaunch(runtime, 'removed from the config');
      await this.stop(runtime, 'removed from the config');
      runtime.log?.close();
    }));
    // Out of `runtimes` now, but stopAll must still wait for them: norikae may not exit first.
    this.removals.add(removals);
    await removals.finally(() => this.removals.delete(removals));
  }

  /** Stops every service norikae launched (on exit). */
  async stopAll(reason = 'norikae-splice is exiting'): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((runtime) => {
      this.cancelLaunch(runtime, reason);
      return this.stop(runtime, reason);
    }));
    await Promise.all(this.removals);
    for (const runtime of this.runtimes.values()) runtime.log?.close();
  }

  /**
   * SIGKILLs every process group norikae launched, at once and synchronously: for an exit that
   * cannot wait for a graceful stop (a second Ctrl-C, a crash of norikae itself).
   */
  killAllNow(): void {
    // The record also holds groups of services a reload removed that are still being stopped.
    const groups = new Set(this.options.record?.groups() ?? []);
    for (const runtime of this.runtimes.values()) if (runtime.process !== undefined) groups.add(runtime.process.pid);
    for (const pgid of groups) {
      try {
        signalGroup(pgid, 'SIGKILL');
      } catch {
        // Not ours to signal any more; nothing else can be done on the way out.
      }
    }
  }

  /**
   * Keeps a launch in flight (still waiting for its dependencies) from starting its process:
   * it ends with an error when it gets there. A process it already started is for stop().
   */
  private cancelLaunch(runtime: ServiceRuntime, reason: string, replaced = false): void {
    runtime.cancelledLaunches++;
    runtime.cancelReason = reason;
    runtime.cancelReplaced = replaced;
  }

  /** Why a cancelled launch ends, for the connections that waited for it. */
  private cancellation(runtime: ServiceRuntime): Error {
    const { name } = runtime.service;
    return runtime.stoppedByUser ? new ServiceStoppedError(name, this.config.file) : new LaunchCancelledError(name, runtime.cancelReason, runtime.cancelReplaced);
  }

  /** Waits for `launch`; when a restart cancelled it, for the launch that replaced it. */
  private async launched(runtime: ServiceRuntime, launch: Promise<void>): Promise<void> {
    try {
      await launch;
    } catch (err) {
      if (!(err instanceof LaunchCancelledError && err.replaced)) throw err;
      await this.launched(runtime, this.ensureLaunched(runtime));
    }
  }

  /** Stops one service's process group, if norikae launched it. */
  private stop(runtime: ServiceRuntime, reason: string): Promise<void> {
    clearTimeout(runtime.idleTimer);
    const process = runtime.process;
    if (process === undefined) return runtime.stopping ?? Promise.resolve();
    if (runtime.stopping === undefined) {
      this.log.info(`stopping ${runtime.service.name} (${reason})`);
      runtime.log?.note(`stopping (${reason})`);
      const { service } = runtime;
      const timeoutMs = service.stopTimeout * 1000;
      const stopCommand = service.stop === undefined ? undefined : () => runStopCommand({
        name: service.name, command: service.command!, stop: service.stop!, cwd: service.cwd, env: service.env, port: runtime.port!,
      }, runtime.log!, timeoutMs);
      runtime.stopping = process.stop(timeoutMs, stopCommand).catch((err: unknown) => {
        // EPERM (a command that changed its user), a failing `stop` command: say so; an idle
        // stop or an exit has nobody else to tell, and a rejection here would end norikae.
        this.log.warn(`stopping ${service.name} failed: ${(err as Error).message}`);
      }).finally(() => {
        runtime.stopping = undefined;
        this.forget(runtime, process);
        this.announce(runtime);
      });
    }
    return runtime.stopping;
  }

  /** The one launch of a service that every waiting connection shares. */
  private ensureLaunched(runtime: ServiceRuntime): Promise<void> {
    if (runtime.launching !== undefined && runtime.launchTicket !== runtime.cancelledLaunches) {
      // A cancelled launch that has not given up yet: the new one starts once it has.
      return runtime.launching.catch(() => {}).then(() => this.ensureLaunched(runtime));
    }
    if (runtime.launching === undefined) {
      const ticket = runtime.launchTicket = runtime.cancelledLaunches;
      runtime.launching = this.startDependencies(runtime).then(() => this.launch(runtime, ticket)).then(() => {
        runtime.failed = false;
      }, (err: unknown) => {
        // A cancelled launch did not fail: the service is simply not running.
        if (!(err instanceof LaunchCancelledError || err instanceof ServiceStoppedError)) runtime.failed = true;
        throw err;
      }).finally(() => {
        runtime.launching = undefined;
        this.announce(runtime);
      });
      this.announce(runtime);
    }
    return runtime.launching;
  }

  /** Makes sure every service in `requires` accepts connections, launching those that do not. */
  private async startDependencies(runtime: ServiceRuntime): Promise<void> {
    const { service } = runtime;
    for (const name of service.requires) {
      const dependency = this.runtimes.get(name)!;
      // One being stopped (an idle stop, say) is launched again once it is down, not waited on.
      if (dependency.stopping !== undefined) await dependency.stopping;
      if (dependency.port !== undefined && await acceptingHost(upstreamHosts(dependency), dependency.port, 1000) !== undefined) continue;
      const why = `${service.name} requires ${name}`;
      if (dependency.service.command === undefined) {
        throw new LaunchError(service.name, `${why}, which is not running (nothing accepts on port ${dependency.port}) and has no \`command\` to launch it.`);
      }
      if (dependency.stoppedByUser) throw new LaunchError(service.name, `${why}, which you stopped. Start ${name} first.`);
      this.log.info(`${why}: launching ${name} first`);
      try {
        await this.launched(dependency, this.ensureLaunched(dependency));
      } catch (err) {
        throw new LaunchError(service.name, `${why}, which failed to start: ${(err as Error).message}`, {
          logTail: err instanceof LaunchError || err instanceof ReadinessTimeoutError ? err.logTail : [],
        });
      }
    }
  }

  private controllable(name: string): ServiceRuntime {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) throw new ControlError(404, `no service named ${name}`);
    if (runtime.service.command === undefined) {
      throw new ControlError(409, `${name} has no \`command\`: norikae-splice only forwards to it and cannot start or stop it`);
    }
    return runtime;
  }

  /** Tells listeners (the dashboard) about a change of `runtime`, at once. */
  private announce(runtime: ServiceRuntime): void {
    if (this.listenerCount('service') === 0) return;
    const info = this.info(runtime.service.name);
    if (info !== undefined) this.emit('service', info);
  }

  /** Counters change with every connection: those are announced at most every UPDATE_INTERVAL_MS. */
  private announceSoon(runtime: ServiceRuntime): void {
    if (runtime.updateScheduled || this.listenerCount('service') === 0) return;
    runtime.updateScheduled = true;
    setTimeout(() => {
      runtime.updateScheduled = false;
      this.announce(runtime);
    }, UPDATE_INTERVAL_MS).unref();
  }

  /** One launch: spawn (unless its process is still up), then wait until the port accepts. */
  private async launch(runtime: ServiceRuntime, ticket: number): Promise<void> {
    const { service } = runtime;
    const log = (runtime.log ??= this.serviceLog(runtime));
    // A stop in progress (a restart's, say) ends its process first: a launch must not take that
    // dying process for one that is still starting.
    if (runtime.stopping !== undefined) await runtime.stopping;
    let process = runtime.process;
    if (process !== undefined && process.exitStatus !== undefined) {
      // Its shell is gone but some of its group lives on without serving (`helper & server`
      // whose server died): clear it away, and count it as the crash it is.
      await this.stop(runtime, 'not accepting connections');
      this.countCrash(runtime, process, process.exitStatus);
      process = undefined;
    }
    if (Date.now() < runtime.backoffUntil) {
      const seconds = Math.ceil((runtime.backoffUntil - Date.now()) / 1000);
      throw new LaunchError(service.name, `${service.name} keeps crashing (it exited ${runtime.exits.length} times within ${CRASH_WINDOW_MS / 1000} s), `
        + `so it is not relaunched on every request; norikae-splice tries again in ${seconds} s.`, {
        exitCode: runtime.lastExit?.code, signal: runtime.lastExit?.signal, logTail: log.tail(LOG_TAIL_LINES),
      });
    }
    if (process === undefined) {
      runtime.port ??= service.port ?? await findFreePort();
      if (runtime.cancelledLaunches !== ticket) throw this.cancellation(runtime);
      this.checkPortIsFree(runtime);
      process = this.spawn(runtime, log);
    } else {
      debug('%s: port refused while pid %d runs; waiting for it', service.name, process.pid);
    }
    const started = Date.now();
    const readiness = await waitUntilReady({
      hosts: upstreamHosts(runtime),
      port: runtime.port!,
      checks: service.ready,
      httpHost: service.hosts.find((host) => !host.startsWith('*.')) ?? 'localhost',
      logMatched: () => runtime.logMatched,
      delayMs: service.delay * 1000,
      timeoutMs: service.readyTimeout * 1000,
      // A service with a `stop` command may start in the background: its shell exiting with 0 is fine.
      exited: service.stop === undefined ? process.exited : process.exited.then((status) => (status.code === 0 ? never() : status)),
      cancelled: () => runtime.cancelledLaunches !== ticket,
    });
    switch (readiness.state) {
      case 'cancelled':
        throw this.cancellation(runtime);
      case 'ready':
        this.log.info(`${service.name} ready on :${runtime.port} in ${((Date.now() - started) / 1000).toFixed(2)} s`);
        this.armIdleTimer(runtime);
        return;
      case 'exited':
        throw new LaunchError(service.name, `${service.name} exited ${describeExit(readiness.status)} before it accepted connections on port ${runtime.port}.`, {
          exitCode: readiness.status.code, signal: readiness.status.signal, logTail: log.tail(LOG_TAIL_LINES),
        });
      case 'timeout': {
        const failing = readiness.failing.join('; ');
        this.log.warn(`${service.name} was not ready within ${service.readyTimeout} s: ${failing}`);
        await this.stop(runtime, 'not ready in time');
        throw new ReadinessTimeoutError(service.name, `${service.name} was not ready within ${service.readyTimeout} s (ready_timeout): `
          + `${failing}. It was stopped. Check that its command listens on {port} or $PORT.`, log.tail(LOG_TAIL_LINES));
      }
    }
  }

  /**
   * The port was refused on every address, yet something may hold it (bound, or listening
   * elsewhere): then the child would only fail with EADDRINUSE in its own log. Name the holder.
   */
  private checkPortIsFree(runtime: ServiceRuntime): void {
    const owner = findPortOwner(runtime.port!);
    runtime.portHeldBy = owner;
    if (owner === undefined) return;
    const { name } = runtime.service;
    const message = `port ${runtime.port} of ${name} is held by pid ${owner.pid} (${owner.command}), which norikae-splice did not start`;
    this.log.warn(message);
    // No announce here: the launch's end (ensureLaunched) announces it, holder included.
    throw new LaunchError(name, `${message}. Stop that process, or give [service.${name}] another port.`);
  }

  private spawn(runtime: ServiceRuntime, log: ServiceLog): LaunchedProcess {
    const { service } = runtime;
    const launchId = randomUUID();
    const sinceIdleStop = Date.now() - runtime.idleStoppedAt;
    if (sinceIdleStop < service.idleCooldown * 1000) {
      this.log.info(`${service.name} is launched again ${(sinceIdleStop / 1000).toFixed(1)} s after its idle stop: a client reconnected `
        + '(hot-reload clients do that); raise idle_timeout if it keeps coming back');
    }
    runtime.logMatched = false;
    const command = service.command!.replaceAll('{port}', String(runtime.port));
    this.log.info(`launching ${service.name}: ${command}${service.cwd ? ` (in ${service.cwd})` : ''}`);
    log.note(`launching on port ${runtime.port}: ${command}`);
    const process = launchCommand({
      name: service.name, command: service.command!, cwd: service.cwd, env: service.env, port: runtime.port!,
    }, log);
    runtime.process = process;
    // Its dependencies are in use as long as it runs (see armIdleTimer).
    for (const name of service.requires) {
      const dependency = this.runtimes.get(name);
      if (dependency === undefined) continue;
      clearTimeout(dependency.idleTimer);
      dependency.heldByDependent = dependency.process !== undefined;
    }
    runtime.launchedAs = launchSignature(service);
    runtime.launchIds.set(process, launchId);
    this.options.record?.add({ launchId, service: service.name, process });
    void process.exited.then((status) => this.onExit(runtime, process, status));
    return process;
  }

  private onExit(runtime: ServiceRuntime, process: LaunchedProcess, status: ExitStatus): void {
    const { name } = runtime.service;
    runtime.log?.note(`exited ${describeExit(status)}`);
    if (process.stopRequested) {
      runtime.lastExit = { code: status.code, signal: status.signal, at: Date.now() };
      return;
    }
    if (status.code === 0 && runtime.service.stop !== undefined) {
      // Started in the background (a daemon, a container): its `stop` command stops it.
      this.log.info(`${name}'s command finished; it runs in the background until its stop command`);
      return;
    }
    if (groupAlive(process.pid)) {
      debug('%s: shell %d exited, its group lives on', name, process.pid);
      return;
    }
    this.log.info(`${name} exited ${describeExit(status)}`);
    this.forget(runtime, process);
    this.countCrash(runtime, process, status);
    this.announce(runtime);
  }

  /** An exit nobody asked for: remembered, and after CRASH_LIMIT of them in a row, a back-off. */
  private countCrash(runtime: ServiceRuntime, process: LaunchedProcess, status: ExitStatus): void {
    const { name } = runtime.service;
    const now = Date.now();
    runtime.lastExit = { code: status.code, signal: status.signal, at: now };
    runtime.exits = [...runtime.exits.filter((at) => now - at < CRASH_WINDOW_MS), now];
    if (now - process.startedAt > CRASH_WINDOW_MS) runtime.backoffMs = 0;
    if (runtime.exits.length >= CRASH_LIMIT) {
      runtime.backoffMs = Math.min(BACKOFF_MAX_MS, runtime.backoffMs * 2 || BACKOFF_START_MS);
      runtime.backoffUntil = now + runtime.backoffMs;
      this.log.warn(`${name} exited ${runtime.exits.length} times within ${CRASH_WINDOW_MS / 1000} s; not relaunching it for ${runtime.backoffMs / 1000} s`);
    }
  }

  /** Drops a process that is gone (or stopped) from its service's state and the launch record. */
  private forget(runtime: ServiceRuntime, process: LaunchedProcess): void {
    if (runtime.process === process) {
      runtime.process = undefined;
      // A port edited while it ran applies from the next launch.
      runtime.port = runtime.service.port ?? runtime.port;
      // Its dependencies may be idle now.
      for (const name of runtime.service.requires) {
        const dependency = this.runtimes.get(name);
        if (dependency !== undefined) this.armIdleTimer(dependency);
      }
    }
    const launchId = runtime.launchIds.get(process);
    if (launchId !== undefined) this.options.record?.remove(launchId);
    runtime.launchIds.delete(process);
    clearTimeout(runtime.idleTimer);
  }

  /** Counts a spliced connection; the idle timer runs only while there are none. */
  private track(runtime: ServiceRuntime, upstream: Socket): Socket {
    runtime.upstreams.add(upstream);
    clearTimeout(runtime.idleTimer);
    // `on`, not `once`: 'close' comes once anyway, and once() costs a wrapper per connection.
    upstream.on('close', () => {
      runtime.upstreams.delete(upstream);
      runtime.bytesIn += upstream.bytesWritten;
      runtime.bytesOut += upstream.bytesRead;
      if (runtime.upstreams.size === 0) this.armIdleTimer(runtime);
      this.announceSoon(runtime);
    });
    this.announceSoon(runtime);
    return upstream;
  }

  /**
   * Starts counting a service's idle time, unless it has connections, or a running service
   * `requires` it: a dependent talks to its dependency directly (a web app to its database),
   * past norikae, so those connections are not counted. The count starts when the last dependent stops.
   */
  private armIdleTimer(runtime: ServiceRuntime): void {
    const seconds = runtime.service.idleTimeout;
    clearTimeout(runtime.idleTimer);
    runtime.heldByDependent = false;
    if (seconds === undefined || runtime.process === undefined || runtime.upstreams.size > 0) return;
    if (this.hasRunningDependent(runtime)) {
      runtime.heldByDependent = true;
      return;
    }
    runtime.idleTimer = setTimeout(() => {
      // A reload may have made a running service require it meanwhile.
      if (this.hasRunningDependent(runtime)) {
        runtime.heldByDependent = true;
        return;
      }
      runtime.idleStoppedAt = Date.now();
      void this.stop(runtime, `idle for ${seconds} s`);
    }, seconds * 1000);
    runtime.idleTimer.unref();
  }

  private hasRunningDependent(runtime: ServiceRuntime): boolean {
    const { name } = runtime.service;
    for (const other of this.runtimes.values()) {
      if (other.process !== undefined && other.service.requires.includes(name)) return true;
    }
    return false;
  }

  private serviceLog(runtime: ServiceRuntime): ServiceLog {
    const { service } = runtime;
    let warned = false;
    return new ServiceLog({
      // The log_dir norikae started with: a reload's applies at the next start, for every service alike.
      file: join(this.logDir, `${service.name}.log`),
      echo: (line) => {
        const pattern = runtime.service.ready.log;
        if (pattern !== undefined && !runtime.logMatched && pattern.test(line)) runtime.logMatched = true;
        if (this.options.echoOutput) process.stderr.write(`${service.name} | ${line}\n`);
        if (this.listenerCount('log') > 0) this.emit('log', { name: service.name, line });
      },
      onFileError: (err) => {
        if (!warned) this.log.warn(`cannot write the log of ${service.name}: ${err.message}`);
        warned = true;
      },
    });
  }
}

class ServiceRuntime {
  /** Open spliced upstream sockets: the connection count, live byte counts, the idle stop. */
  readonly upstreams = new Set<Socket>();
  bytesIn = 0;
  bytesOut = 0;
  stoppedByUser = false;
  /** The last launch failed (exited early or timed out). */
  failed = false;
  /** What the running process was launched with (see launchSignature). */
  launchedAs = '';
  updateScheduled = false;
  /** The address the upstream answered on last (127.0.0.1 or ::1 when none is configured). */
  lastHost: string | undefined;
  /** A line of output matched the `ready.log` pattern since the last launch. */
  logMatched = false;
  idleStoppedAt = 0;
  portHeldBy: PortOwner | undefined;
  /** The port in use: the configured one, or one chosen at the first launch. */
  port: number | undefined;
  process: LaunchedProcess | undefined;
  readonly launchIds = new Map<LaunchedProcess, string>();
  launching: Promise<void> | undefined;
  /** `cancelledLaunches` when `launching` began: a launch whose ticket is behind was cancelled. */
  launchTicket = 0;
  cancelledLaunches = 0;
  cancelReason = '';
  cancelReplaced = false;
  stopping: Promise<void> | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** Not counting idle time because a running service requires it (see armIdleTimer). */
  heldByDependent = false;
  log: ServiceLog | undefined;
  /** Times of recent unexpected exits, for the crash-loop back-off. */
  exits: number[] = [];
  lastExit: { code: number | null; signal: string | null; at: number } | undefined;
  backoffMs = 0;
  backoffUntil = 0;

  constructor(public service: ServiceConfig) {
    this.port = service.port;
  }
}

/** Where to dial: the configured upstream, else loopback on both families, the last good one first. */
function upstreamHosts(runtime: ServiceRuntime): readonly string[] {
  const { upstream } = runtime.service;
  if (upstream !== undefined) return [upstream];
  return runtime.lastHost === '::1' ? IPV6_FIRST : IPV4_FIRST;
}

const IPV4_FIRST = [DEFAULT_UPSTREAM_HOST, '::1'] as const;
const IPV6_FIRST = ['::1', DEFAULT_UPSTREAM_HOST] as const;

/** A promise that never settles: an exit that does not end the wait. */
function never(): Promise<never> {
  return new Promise(() => {});
}

/** What a launch depends on: when it changes while the process runs, a restart would apply it. */
function launchSignature(service: ServiceConfig): string {
  return JSON.stringify([service.command, service.cwd, service.env, service.port, service.upstream, service.stop]);
}

function describeExit(status: ExitStatus): string {
  if (status.error !== undefined) return `without starting (${status.error})`;
  if (status.signal !== null) return `on signal ${status.signal}`;
  return `with code ${status.code}`;
}

/** A port nothing listens on right now, for a service configured without one. */
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, DEFAULT_UPSTREAM_HOST, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
