// The registry of services: their runtimes by name, `requires` between them, reloads, control
// (start, stop, restart), and the events the dashboard streams. Each service's own lifecycle is
// its ServiceRuntime's; reaching its upstream is connect() here: dial, and launch when refused.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { formatAddress } from './address.js';
import { DEFAULT_STOP_TIMEOUT, stateDir, type Config, type ServiceConfig } from './config.js';
import { dialFirst } from './dial.js';
import { controlErrors, LaunchCancelledError, LaunchError, NoServiceError, ReadinessTimeoutError, ServiceStoppedError, UpstreamConnectError } from './errors.js';
import type { LaunchRecord } from './launch-record.js';
import { type Log, streamLog } from './log.js';
import { findPortOwner } from './port-owner.js';
import { acceptingHost } from './readiness.js';
import type { UpstreamConnector } from './server.js';
import { abortable } from './abortable.js';
import { launchSignature, ServiceRuntime, type RuntimeContext } from './service-runtime.js';
import type { ServiceInfo } from './service-info.js';
import { ServiceLog } from './service-log.js';
import { signalGroup } from './process-group.js';
import { TerminalHost, terminalSocket } from './terminal.js';

export type { ServiceInfo } from './service-info.js';

export interface SupervisorOptions {
  log?: Log;
  /** Also print every line the services write, prefixed with their name. */
  echoOutput?: boolean;
  /** Where launched process groups are recorded for orphan clean-up; none if undefined. */
  record?: LaunchRecord;
}

/** How often at most a service's connection counters are announced to listeners. */
const UPDATE_INTERVAL_MS = 250;

/**
 * Emits `service` (ServiceInfo) whenever a service changes, `log` ({ name, line }) for every line
 * a service prints, and `config` ({ reloadError }) when a reload changed services or was refused;
 * the dashboard streams all three.
 */
export class ServiceSupervisor extends EventEmitter implements UpstreamConnector {
  private readonly runtimes = new Map<string, ServiceRuntime>();
  /** Stops of services a reload removed, still in progress. */
  private readonly removals = new Set<Promise<unknown>>();
  /** Services whose counters are due to be announced (see announceSoon). */
  private readonly dueUpdates = new Set<ServiceRuntime>();
  private infoSequence = 0;
  private readonly instance = randomUUID();
  private readonly logDir: string;
  private readonly log: Log;
  private readonly context: RuntimeContext;
  private config: Config;
  private refusedReload: string | undefined;
  /** The user's starts and restarts under way, per service: the user's stop aborts them. */
  private readonly controls = new Map<ServiceRuntime, Set<AbortController>>();

  constructor(
    config: Config,
    private readonly options: SupervisorOptions = {},
  ) {
    super();
    this.config = config;
    this.logDir = config.logDir;
    this.log = options.log ?? streamLog();
    this.context = {
      log: this.log,
      record: options.record,
      terminals: new TerminalHost(terminalSocket(stateDir(), config.file)),
      configFile: () => this.config.file,
      serviceLog: (runtime) => this.serviceLog(runtime),
      startDependencies: (runtime, signal) => this.startDependencies(runtime, signal),
      hasRunningDependent: (runtime) => this.hasRunningDependent(runtime),
      processChanged: (runtime) => this.processChanged(runtime),
      changed: (runtime, soon) => (soon ? this.announceSoon(runtime) : this.announce(runtime)),
    };
    for (const service of config.services) this.runtimes.set(service.name, new ServiceRuntime(service, this.context));
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
    if (runtime === undefined) throw new NoServiceError(target.name);
    // Awaited only when set: an await costs a turn of the microtask queue on every connection.
    if (runtime.stopped !== undefined) await runtime.stopped;
    if (runtime.launching) {
      await runtime.ensureRunning();
      const probe = this.probeConnection(runtime);
      if (probe !== undefined) return runtime.usage.track(probe);
    }
    if (runtime.port !== undefined) {
      try {
        return runtime.usage.track(await this.dial(runtime));
      } catch (err) {
        // The runtime holds the current config of the service, which a reload may have changed.
        if (runtime.service.command === undefined || !(err instanceof UpstreamConnectError) || err.reason !== 'ECONNREFUSED') throw err;
      }
    }
    // Connect first, launch only when refused: a server the user started by hand is simply used.
    await runtime.ensureRunning(undefined, true);
    return runtime.usage.track(this.probeConnection(runtime) ?? await this.dial(runtime));
  }

  /**
   * After a launch, the first client is spliced over the readiness probe's connection (a dial,
   * loop guard included): one connect less before its first byte.
   */
  private probeConnection(runtime: ServiceRuntime): Socket | undefined {
    const probe = runtime.takeProbeConnection();
    if (probe === undefined) return undefined;
    runtime.hosts.answered(probe.host);
    return probe.socket;
  }

  /** Connects to the service's port, on the address that worked last time first. */
  private async dial(runtime: ServiceRuntime): Promise<Socket> {
    const { socket, host } = await dialFirst(runtime.hosts.list(), runtime.port!, this.config.connectTimeout * 1000);
    runtime.hosts.answered(host);
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
    const bytes = runtime.usage.bytes();
    return {
      name,
      hosts: service.hosts,
      listen: service.listen.map((address) => formatAddress(address)),
      port: runtime.port ?? null,
      state: runtime.state === 'launching' ? 'starting'
        : process ? 'running' : runtime.crashes.backoffLeft() > 0 ? 'crashed' : runtime.state === 'failed' ? 'failed' : 'stopped',
      pid: process?.pid ?? null,
      startedAt: process?.startedAt ?? null,
      connections: runtime.usage.upstreams.size,
      bytesIn: bytes.in,
      bytesOut: bytes.out,
      lastExit: runtime.crashes.lastExit ?? null,
      lastError: runtime.lastError ?? null,
      command: service.command ?? null,
      stoppedByUser: runtime.held,
      pendingRestart: process !== undefined && runtime.launchedAs !== launchSignature(service),
      portHeldBy: runtime.portHeldBy ?? null,
      sequence: ++this.infoSequence,
      instance: this.instance,
    };
  }

  /** The last `lines` lines a service printed. */
  logTail(name: string, lines: number): string[] {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) throw new NoServiceError(name);
    return runtime.log?.tail(lines) ?? [];
  }

  /** Launches a service now (from the dashboard or the CLI), and lets requests launch it again. */
  async start(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    await this.overtakable(runtime, 'start', () => runtime.start());
    return this.info(name)!;
  }

  /** Stops a service and keeps it stopped: requests for it get 503 until it is started again. */
  async stopByUser(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    if (runtime.process === undefined && !runtime.launching && runtime.port !== undefined
      && await acceptingHost(runtime.hosts.list(), runtime.port, 1000) !== undefined) {
      // A server started by hand is only forwarded to; "stopped" would be a lie while it answers.
      const owner = findPortOwner(runtime.port);
      throw controlErrors.notLaunchedHere(name, runtime.port, owner ? `pid ${owner.pid} (${owner.command})` : 'a process of its own');
    }
    for (const control of this.controls.get(runtime) ?? []) control.abort();
    await runtime.stop('held', 'stopped by you');
    return this.info(name)!;
  }

  /** Stop, then start; a stop the user sends meanwhile wins (see overtakable), before or after the launch began. */
  async restart(name: string): Promise<ServiceInfo> {
    const runtime = this.controllable(name);
    await this.overtakable(runtime, 'restart', (overtaken) => runtime.restart(overtaken));
    return this.info(name)!;
  }

  /**
   * Runs the user's start or restart of `runtime`. A stop the user sends before it is done wins
   * (it aborts `overtaken`): the start then fails with an `overtaken` ControlError (409) instead
   * of bringing the service back. A restart sent meanwhile does not: a start follows its launch.
   */
  private async overtakable(runtime: ServiceRuntime, action: 'start' | 'restart', run: (overtaken: AbortSignal) => Promise<void>): Promise<void> {
    const control = new AbortController();
    const controls = this.controls.get(runtime) ?? new Set();
    this.controls.set(runtime, controls.add(control));
    try {
      await run(control.signal);
    } catch (err) {
      const stoppedMeanwhile = err === control.signal.reason || err instanceof LaunchCancelledError || err instanceof ServiceStoppedError;
      if (stoppedMeanwhile && control.signal.aborted) throw controlErrors.overtaken(runtime.name, action);
      throw err;
    } finally {
      controls.delete(control);
      if (controls.size === 0) this.controls.delete(runtime);
    }
  }

  /** The last reload was refused, and why; undefined once a good edit applied (or the file is back as it runs). */
  reloadError(): string | null {
    return this.refusedReload ?? null;
  }

  /** Records a refused reload (or its end), and tells the dashboard. */
  setReloadError(message: string | undefined): void {
    if (message === this.refusedReload) return;
    this.refusedReload = message;
    this.emit('config', { reloadError: this.reloadError() });
  }

  /**
   * Takes a new config: added services route at once, removed ones are stopped, a changed one
   * keeps running and uses its new settings from its next launch (its port too: the running
   * process listens on the old one). Emits `config` once the table has changed, for the dashboard.
   */
  async reconfigure(config: Config): Promise<void> {
    this.config = config;
    this.refusedReload = undefined;
    const names = new Set(config.services.map((service) => service.name));
    const removed = [...this.runtimes.values()].filter((runtime) => !names.has(runtime.name));
    for (const service of config.services) {
      const runtime = this.runtimes.get(service.name);
      if (runtime === undefined) this.runtimes.set(service.name, new ServiceRuntime(service, this.context));
      else runtime.reconfigure(service);
    }
    for (const runtime of removed) this.runtimes.delete(runtime.name);
    for (const runtime of this.runtimes.values()) {
      // Kept for a dependent that may no longer require it (or be there at all).
      if (runtime.usage.heldByDependent) runtime.usage.armIdleTimer();
      this.announce(runtime);
    }
    this.emit('config', { reloadError: null });
    const removals = Promise.all(removed.map(async (runtime) => {
      await runtime.stop('removed', 'removed from the config');
      runtime.log?.close();
    }));
    // Out of `runtimes` now, but stopAll must still wait for them: norikae may not exit first.
    this.removals.add(removals);
    await removals.finally(() => this.removals.delete(removals));
  }

  /** Whether any service has a process, a launch or a stop under way (what `exit_when_idle` waits out). */
  busy(): boolean {
    if (this.removals.size > 0) return true;
    return [...this.runtimes.values()].some((runtime) => runtime.process !== undefined || runtime.launching || runtime.stopped !== undefined);
  }

  /** Stops every service norikae launched (on exit). */
  async stopAll(reason = 'norikae-splice is exiting'): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((runtime) => runtime.stop('exiting', reason)));
    await Promise.all(this.removals);
    for (const runtime of this.runtimes.values()) runtime.log?.close();
    // The record left on disk says that nothing runs: a write of it may still be under way.
    await this.options.record?.flushed();
  }

  /**
   * SIGKILLs every process group norikae launched, at once and synchronously: for an exit that
   * cannot wait for a graceful stop (a second Ctrl-C, a crash of norikae itself).
   */
  killAllNow(): void {
    // The record also holds groups of services a reload removed that are still being stopped.
    const groups = new Set(this.options.record?.groups() ?? []);
    for (const runtime of this.runtimes.values()) {
      if (runtime.process === undefined) continue;
      groups.delete(runtime.process.pid);
      try {
        // The group and whatever left it (setsid).
        runtime.process.killNow();
      } catch {
        // Not ours to signal any more.
      }
    }
    for (const pgid of groups) {
      try {
        signalGroup(pgid, 'SIGKILL');
      } catch {
        // Not ours to signal any more; nothing else can be done on the way out.
      }
    }
  }

  /** Makes sure every service in `requires` accepts connections, launching those that do not. */
  private async startDependencies(runtime: ServiceRuntime, signal: AbortSignal): Promise<void> {
    for (const name of runtime.service.requires) {
      const dependency = this.runtimes.get(name)!;
      // One being stopped (an idle stop, say) is launched again once it is down, not waited on.
      if (dependency.stopped !== undefined) await abortable(dependency.stopped, signal);
      if (dependency.port !== undefined && await abortable(acceptingHost(dependency.hosts.list(), dependency.port, 1000), signal) !== undefined) continue;
      signal.throwIfAborted();
      const why = `${runtime.name} requires ${name}`;
      if (dependency.service.command === undefined) {
        throw new LaunchError(runtime.name, `${why}, which is not running (nothing accepts on port ${dependency.port}) and has no \`command\` to launch it.`);
      }
      if (dependency.held) throw new LaunchError(runtime.name, `${why}, which you stopped. Start ${name} first.`);
      this.log.info(`${why}: launching ${name} first`);
      try {
        await dependency.ensureRunning(signal, true);
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const message = err instanceof ServiceStoppedError ? 'which you stopped' : `which failed to start: ${(err as Error).message}`;
        throw new LaunchError(runtime.name, `${why}, ${message}`, {
          logTail: err instanceof LaunchError || err instanceof ReadinessTimeoutError ? err.logTail : [],
        });
      }
    }
  }

  private hasRunningDependent(runtime: ServiceRuntime): boolean {
    for (const other of this.runtimes.values()) {
      if (other.process !== undefined && other.service.requires.includes(runtime.name)) return true;
    }
    return false;
  }

  /** A process started (its dependencies are in use while it runs) or ended (they may be idle now). */
  private processChanged(runtime: ServiceRuntime): void {
    for (const name of runtime.service.requires) {
      const dependency = this.runtimes.get(name);
      if (dependency === undefined) continue;
      if (runtime.process !== undefined) dependency.usage.holdForDependent();
      else dependency.usage.armIdleTimer();
    }
  }

  private controllable(name: string): ServiceRuntime {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) throw new NoServiceError(name);
    if (runtime.service.command === undefined) throw controlErrors.notControllable(name);
    return runtime;
  }

  /** Tells listeners (the dashboard) about a change of `runtime`, at once. */
  private announce(runtime: ServiceRuntime): void {
    if (this.listenerCount('service') === 0 || this.runtimes.get(runtime.name) !== runtime) return;
    this.dueUpdates.delete(runtime);
    this.emit('service', this.info(runtime.name)!);
  }

  /** Counters change with every connection: those are announced at most every UPDATE_INTERVAL_MS. */
  private announceSoon(runtime: ServiceRuntime): void {
    if (this.dueUpdates.has(runtime) || this.listenerCount('service') === 0) return;
    this.dueUpdates.add(runtime);
    setTimeout(() => {
      if (this.dueUpdates.has(runtime)) this.announce(runtime);
    }, UPDATE_INTERVAL_MS).unref();
  }

  private serviceLog(runtime: ServiceRuntime): ServiceLog {
    const { name } = runtime;
    let warned = false;
    return new ServiceLog({
      // The log_dir norikae started with: a reload's applies at the next start, for every service alike.
      file: join(this.logDir, `${name}.log`),
      echo: (line) => {
        const pattern = runtime.service.ready.log;
        if (pattern !== undefined && !runtime.logMatched && pattern.test(line)) runtime.logMatched = true;
        if (this.options.echoOutput) process.stderr.write(`${name} | ${line}\n`);
        if (this.listenerCount('log') > 0) this.emit('log', { name, line });
      },
      onFileError: (err) => {
        if (!warned) this.log.warn(`cannot write the log of ${name}: ${err.message}`);
        warned = true;
      },
    });
  }
}
