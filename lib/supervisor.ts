// The launcher: reaching a service's upstream, launching it when nothing listens there. One state
// per service holds its process, the single launch every waiting connection shares, its open
// connections (for the idle stop) and its recent exits (for the crash-loop back-off).

import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import createDebug from 'debug';
import { DEFAULT_STOP_TIMEOUT, type Config, type ServiceConfig } from './config.js';
import { DEFAULT_UPSTREAM_HOST, dial } from './dial.js';
import { LaunchError, ReadinessTimeoutError, UpstreamConnectError } from './errors.js';
import { launchCommand, type ExitStatus, type LaunchedProcess } from './launch.js';
import type { LaunchRecord } from './launch-record.js';
import { type Log, streamLog } from './log.js';
import { groupAlive } from './process-group.js';
import { waitUntilReady } from './readiness.js';
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

/** What a caller may read of a service's state (tests, status lines). */
export interface ServiceStatus {
  name: string;
  state: 'stopped' | 'starting' | 'running';
  pid: number | undefined;
  port: number | undefined;
  connections: number;
}

export class ServiceSupervisor implements UpstreamConnector {
  private readonly runtimes = new Map<string, ServiceRuntime>();
  private readonly log: Log;

  constructor(
    private readonly config: Config,
    private readonly options: SupervisorOptions = {},
  ) {
    this.log = options.log ?? streamLog();
  }

  /** Stops what a previous norikae launched and could not stop (it was SIGKILLed). */
  async cleanOrphans(): Promise<void> {
    const stopped = await this.options.record?.cleanOrphans(DEFAULT_STOP_TIMEOUT * 1000) ?? [];
    for (const { service, pids } of stopped) {
      this.log.info(`stopped ${service} (pid ${pids.join(', ')}), left running by a previous norikae-splice`);
    }
  }

  async connect(service: ServiceConfig): Promise<Socket> {
    const runtime = this.runtime(service);
    await runtime.stopping;
    await runtime.launching;
    const host = service.upstream ?? DEFAULT_UPSTREAM_HOST;
    if (runtime.port !== undefined) {
      try {
        return this.track(runtime, await dial(host, runtime.port, this.config.connectTimeout * 1000));
      } catch (err) {
        if (service.command === undefined || !(err instanceof UpstreamConnectError) || err.reason !== 'ECONNREFUSED') throw err;
      }
    }
    // Connect first, launch only when refused: a server the user started by hand is simply used.
    runtime.launching ??= this.launch(runtime).finally(() => (runtime.launching = undefined));
    await runtime.launching;
    return this.track(runtime, await dial(host, runtime.port!, this.config.connectTimeout * 1000));
  }

  status(name: string): ServiceStatus | undefined {
    const runtime = this.runtimes.get(name);
    const service = this.config.services.find((s) => s.name === name);
    if (service === undefined) return undefined;
    return {
      name,
      state: runtime?.launching ? 'starting' : runtime?.process ? 'running' : 'stopped',
      pid: runtime?.process?.pid,
      port: runtime?.port ?? service.port,
      connections: runtime?.connections ?? 0,
    };
  }

  /** Stops every service norikae launched (on exit). */
  async stopAll(reason = 'norikae-splice is exiting'): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((runtime) => this.stop(runtime, reason)));
    for (const runtime of this.runtimes.values()) runtime.log?.close();
  }

  /** Stops one service's process group, if norikae launched it. */
  stop(runtime: ServiceRuntime, reason: string): Promise<void> {
    clearTimeout(runtime.idleTimer);
    const process = runtime.process;
    if (process === undefined) return runtime.stopping ?? Promise.resolve();
    this.log.info(`stopping ${runtime.service.name} (${reason})`);
    runtime.log?.note(`stopping (${reason})`);
    runtime.stopping ??= process.stop(runtime.service.stopTimeout * 1000).finally(() => {
      runtime.stopping = undefined;
      this.forget(runtime, process);
    });
    return runtime.stopping;
  }

  private runtime(service: ServiceConfig): ServiceRuntime {
    let runtime = this.runtimes.get(service.name);
    if (runtime === undefined) {
      runtime = new ServiceRuntime(service);
      this.runtimes.set(service.name, runtime);
    }
    return runtime;
  }

  /** One launch: spawn (unless its process is still up), then wait until the port accepts. */
  private async launch(runtime: ServiceRuntime): Promise<void> {
    const { service } = runtime;
    const log = (runtime.log ??= this.serviceLog(service));
    if (Date.now() < runtime.backoffUntil) {
      const seconds = Math.ceil((runtime.backoffUntil - Date.now()) / 1000);
      throw new LaunchError(service.name, `${service.name} keeps crashing (it exited ${runtime.exits.length} times within ${CRASH_WINDOW_MS / 1000} s), `
        + `so it is not relaunched on every request; norikae-splice tries again in ${seconds} s.`, { ...runtime.lastExit, logTail: log.tail(LOG_TAIL_LINES) });
    }
    let process = runtime.process;
    if (process !== undefined && process.exitStatus !== undefined) {
      // Its shell is gone but some of its group lives on without serving: clear it away first.
      await this.stop(runtime, 'not accepting connections');
      process = undefined;
    }
    if (process === undefined) {
      runtime.port ??= service.port ?? await findFreePort();
      process = this.spawn(runtime, log);
    } else {
      debug('%s: port refused while pid %d runs; waiting for it', service.name, process.pid);
    }
    const started = Date.now();
    const readiness = await waitUntilReady({
      host: service.upstream ?? DEFAULT_UPSTREAM_HOST,
      port: runtime.port!,
      delayMs: service.delay * 1000,
      timeoutMs: service.readyTimeout * 1000,
      exited: process.exited,
    });
    switch (readiness.state) {
      case 'ready':
        this.log.info(`${service.name} ready on :${runtime.port} in ${((Date.now() - started) / 1000).toFixed(2)} s`);
        this.armIdleTimer(runtime);
        return;
      case 'exited':
        throw new LaunchError(service.name, `${service.name} exited ${describeExit(readiness.status)} before it accepted connections on port ${runtime.port}.`, {
          exitCode: readiness.status.code, signal: readiness.status.signal, logTail: log.tail(LOG_TAIL_LINES),
        });
      case 'timeout':
        this.log.warn(`${service.name} did not accept connections on :${runtime.port} within ${service.readyTimeout} s`);
        await this.stop(runtime, 'not ready in time');
        throw new ReadinessTimeoutError(service.name, `${service.name} did not accept connections on port ${runtime.port} within `
          + `${service.readyTimeout} s (ready_timeout), so it was stopped. Check that its command listens on {port} or $PORT.`, log.tail(LOG_TAIL_LINES));
    }
  }

  private spawn(runtime: ServiceRuntime, log: ServiceLog): LaunchedProcess {
    const { service } = runtime;
    const launchId = randomUUID();
    const command = service.command!.replaceAll('{port}', String(runtime.port));
    this.log.info(`launching ${service.name}: ${command}${service.cwd ? ` (in ${service.cwd})` : ''}`);
    log.note(`launching on port ${runtime.port}: ${command}`);
    const process = launchCommand({
      name: service.name, command: service.command!, cwd: service.cwd, env: service.env, port: runtime.port!, launchId,
    }, log);
    runtime.process = process;
    runtime.launchIds.set(process, launchId);
    this.options.record?.add({ launchId, pgid: process.pid, service: service.name });
    void process.exited.then((status) => this.onExit(runtime, process, status));
    return process;
  }

  private onExit(runtime: ServiceRuntime, process: LaunchedProcess, status: ExitStatus): void {
    const { name } = runtime.service;
    runtime.log?.note(`exited ${describeExit(status)}`);
    if (process.stopRequested) return;
    if (groupAlive(process.pid)) {
      debug('%s: shell %d exited, its group lives on', name, process.pid);
      return;
    }
    this.log.info(`${name} exited ${describeExit(status)}`);
    this.forget(runtime, process);
    const now = Date.now();
    runtime.lastExit = { exitCode: status.code, signal: status.signal };
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
    if (runtime.process === process) runtime.process = undefined;
    const launchId = runtime.launchIds.get(process);
    if (launchId !== undefined) this.options.record?.remove(launchId);
    runtime.launchIds.delete(process);
    clearTimeout(runtime.idleTimer);
  }

  /** Counts a spliced connection; the idle timer runs only while there are none. */
  private track(runtime: ServiceRuntime, upstream: Socket): Socket {
    runtime.connections++;
    clearTimeout(runtime.idleTimer);
    upstream.once('close', () => {
      if (--runtime.connections === 0) this.armIdleTimer(runtime);
    });
    return upstream;
  }

  private armIdleTimer(runtime: ServiceRuntime): void {
    const seconds = runtime.service.idleTimeout;
    clearTimeout(runtime.idleTimer);
    if (seconds === undefined || runtime.process === undefined || runtime.connections > 0) return;
    runtime.idleTimer = setTimeout(() => void this.stop(runtime, `idle for ${seconds} s`), seconds * 1000);
    runtime.idleTimer.unref();
  }

  private serviceLog(service: ServiceConfig): ServiceLog {
    let warned = false;
    return new ServiceLog({
      file: join(this.config.logDir, `${service.name}.log`),
      echo: this.options.echoOutput ? (line) => process.stderr.write(`${service.name} | ${line}\n`) : undefined,
      onFileError: (err) => {
        if (!warned) this.log.warn(`cannot write the log of ${service.name}: ${err.message}`);
        warned = true;
      },
    });
  }
}

class ServiceRuntime {
  /** The port in use: the configured one, or one chosen at the first launch. */
  port: number | undefined;
  process: LaunchedProcess | undefined;
  readonly launchIds = new Map<LaunchedProcess, string>();
  launching: Promise<void> | undefined;
  stopping: Promise<void> | undefined;
  connections = 0;
  idleTimer: NodeJS.Timeout | undefined;
  log: ServiceLog | undefined;
  /** Times of recent unexpected exits, for the crash-loop back-off. */
  exits: number[] = [];
  lastExit: { exitCode: number | null; signal: string | null } | undefined;
  backoffMs = 0;
  backoffUntil = 0;

  constructor(readonly service: ServiceConfig) {
    this.port = service.port;
  }
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
