// The one place that wires norikae-splice together: config → launch record → supervisor → server
// → dashboard → config watcher. `bin/` parses arguments and calls startApp; code that embeds
// norikae-splice does the same through the package's entry (index.ts). Process-wide concerns
// (signals, the uncaught-exception handler) stay with the caller: close() and killNow() are what
// they call.

import { randomBytes } from 'node:crypto';
import { ApiAccess, apiKeyFile, configId, createApiKey } from './api-access.js';
import { findAddressClash, formatAddress, resolveAddressPlan, isLoopback, serviceListenAddresses, serviceUrl, type ListenAddress } from './address.js';
import { sameConfig, stateDir, type Config } from './config.js';
import { checkResolvedAddresses, findConfigFile, loadConfig } from './config-file.js';
import { configReuse, type ConfigReuse } from './config-reuse.js';
import { describeChanges, routingTable } from './config-summary.js';
import { configWarnings, formatWarning } from './config-warnings.js';
import { watchConfigFile } from './config-watcher.js';
import { Dashboard } from './dashboard.js';
import { ConfigError, ListenError } from './errors.js';
import { watchIdle } from './idle-exit.js';
import { LaunchRecord, launchRecordFile } from './launch-record.js';
import { loadCa, permits } from './local-ca.js';
import { infoLines, type Log, streamLog } from './log.js';
import { SpliceServer } from './server.js';
import type { InheritedListeners } from './socket-activation.js';
import { startSpawner } from './spawner.js';
import { ServiceSupervisor } from './supervisor.js';

export interface StartAppOptions {
  /** The config file; default: ./norikae.toml, then $XDG_CONFIG_HOME/norikae/config.toml. */
  config?: string | undefined;
  /** Replaces the config's `listen` (the CLI's --listen). */
  listen?: ListenAddress[] | undefined;
  /** Replaces the config's `https` (the CLI's --https). */
  https?: ListenAddress[] | undefined;
  /** Also print every line the services write, prefixed with their name. */
  serviceOutput?: boolean | undefined;
  /** Where the lines a person reads go; default: stderr. */
  log?: Log | undefined;
  /** Reload when the config file is edited (default); false: only through reload(). */
  watch?: boolean | undefined;
  /**
   * Listening sockets passed by socket activation (`new InheritedListeners(inheritedSockets())`):
   * taken for the addresses they are bound to instead of binding; those no address takes are closed.
   */
  inherited?: InheritedListeners | undefined;
  /**
   * Called once the config's `exit_when_idle` has passed with no service running and no
   * connection open; the caller closes the app and exits. Only for a socket-activated start
   * (`inherited` set): otherwise nothing would start norikae-splice again.
   */
  onIdle?: (() => void) | undefined;
}

/** What a reload did: applied the edit, found nothing to apply, or refused it (said on the log and the dashboard). */
export type ReloadOutcome = 'applied' | 'unchanged' | 'refused';

export class App {
  private stopWatching: () => void = () => {};
  private stopIdleWatch: () => void = () => {};
  /** Reloads run one after the other, in the order they were asked for. */
  private reloading: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(
    private current: Config,
    private readonly options: StartAppOptions,
    private readonly log: Log,
    readonly supervisor: ServiceSupervisor,
    private readonly server: SpliceServer,
    /** What the last read parsed and checked, which a reload takes again where the file did not change it. */
    private readonly reuse: ConfigReuse,
  ) {}

  /** @internal Use startApp. */
  static async start(options: StartAppOptions): Promise<App> {
    const log = options.log ?? streamLog();
    const reuse = configReuse();
    const config = readConfig(options, reuse);
    // Upstream names resolved: one that names this machine, on norikae's own port, is a loop.
    await checkResolvedAddresses(config, options.listen === undefined ? 'file' : 'cli');
    const record = new LaunchRecord(launchRecordFile(stateDir(), config.file));
    const supervisor = new ServiceSupervisor(config, { log, echoOutput: options.serviceOutput === true, record });
    // Refuses while another norikae-splice runs this config; stops what a SIGKILLed one left behind.
    await supervisor.cleanOrphans();
    let running: App | undefined;
    const limits = (): Config => running?.config ?? config;
    const dashboard = config.dashboardHost === undefined ? undefined : new Dashboard(supervisor, { limits, access: apiAccess(config, log) });
    const server = new SpliceServer(config, { log, connector: supervisor, dashboard, premade: options.inherited });
    const bound = await server.listen();
    // On disk before "listening on" is said: the CLI's other commands find this norikae by it.
    await record.setListening(bound);
    const app = new App(config, options, log, supervisor, server, reuse);
    running = app;
    app.takeInherited(options.inherited);
    // Watching before "listening on" is said: an edit made as soon as a person (or a test) reads
    // that line is seen, not lost in between.
    if (options.watch !== false) {
      app.stopWatching = watchConfigFile(config.file, () => {
        app.reload('file changed').catch((err: unknown) => log.error(`reload failed: ${String(err)}`));
      });
    }
    app.announce(bound);
    // Ahead of the first launch, which then does not wait for it to boot (see spawner.ts).
    if (config.services.some((service) => service.command !== undefined && !service.terminal)) startSpawner();
    await app.warnOfNamesOutsideCa(config);
    return app;
  }

  /** The running config (the last edit that was applied). */
  get config(): Config {
    return this.current;
  }

  /** The HTTP addresses bound (port 0 resolved). */
  addresses(): ListenAddress[] {
    return this.server.addresses();
  }

  /** The `https` addresses bound (port 0 resolved). */
  httpsAddresses(): ListenAddress[] {
    return this.server.httpsAddresses();
  }

  /** The raw TCP addresses bound for service `name`'s own `listen`. */
  serviceAddresses(name: string): ListenAddress[] {
    return this.server.serviceAddresses(name);
  }

  /**
   * Reads the config file again and applies it without dropping a connection, or refuses it
   * whole (a config error, an address clash, a listener that cannot be bound) and keeps running
   * as it was; a refusal is logged and shown on the dashboard until an edit is taken.
   */
  reload(why = 'reload'): Promise<ReloadOutcome> {
    const next = this.reloading.then(() => this.reloadNow(why));
    this.reloading = next.catch(() => {});
    return next;
  }

  /** Stops watching and accepting, ends open connections, and stops every service it launched. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopWatching();
      this.stopIdleWatch();
      await this.server.close();
      await this.supervisor.stopAll();
    })();
    return this.closing;
  }

  /** SIGKILLs every process group launched, at once: for an exit that cannot wait (a second Ctrl-C, a crash). */
  killNow(): void {
    this.supervisor.killAllNow();
  }

  /** Says which passed sockets were taken, closes the rest, and arms `exit_when_idle` (see StartAppOptions). */
  private takeInherited(inherited: InheritedListeners | undefined): void {
    if (inherited === undefined || inherited.sockets.length === 0) {
      if (this.current.exitWhenIdle !== undefined) {
        this.log.warn('exit_when_idle applies only when systemd starts norikae-splice (socket activation): it keeps running');
      }
      return;
    }
    const unclaimed = inherited.closeUnclaimed();
    const taken = inherited.sockets.filter((socket) => !unclaimed.includes(socket));
    this.log.info(`listening on ${taken.length} socket${taken.length === 1 ? '' : 's'} passed by systemd (${taken.map((socket) => socket.name).join(', ')})`);
    for (const socket of unclaimed) {
      this.log.warn(`a socket passed by systemd (${socket.name}${socket.address ? `, ${formatAddress(socket.address)}` : ''}) is not a listen address of the config; closed it. `
        + 'Run `norikae-splice service install` again after editing `listen`.');
    }
    const { onIdle } = this.options;
    if (onIdle === undefined) return;
    this.stopIdleWatch = watchIdle(() => this.current.exitWhenIdle, () => !this.supervisor.busy() && this.server.openConnections === 0, () => {
      this.log.info(`idle for ${this.current.exitWhenIdle} s (exit_when_idle): exiting; systemd starts norikae-splice again on the next connection`);
      onIdle();
    });
  }

  private async reloadNow(why: string): Promise<ReloadOutcome> {
    let next: Config;
    try {
      next = readConfig(this.options, this.reuse);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return this.refuse(err.message, err.codeFrame);
    }
    // `listen` edits apply at the next start: what the edit must not clash with is what is bound now.
    const clash = findAddressClash({ ...next, listen: this.server.addresses(), https: this.server.httpsAddresses() }, 'running', await resolveAddressPlan(next));
    if (clash !== undefined) return this.refuse(`${next.file}: ${clash.message}`);
    // Editors and file systems report saves that change nothing; those are not reloads.
    if (why === 'file changed' && sameConfig(next, this.current)) {
      if (this.supervisor.reloadError() !== null) {
        this.log.info('the config file is valid again, and the same as the running config: nothing to apply');
        this.supervisor.setReloadError(undefined);
      }
      return 'unchanged';
    }
    const summary = describeChanges(this.current, next);
    try {
      // Binds new listeners first, then swaps the router and the supervisor's table in one tick.
      await this.server.reconfigure(next);
    } catch (err) {
      if (!(err instanceof ListenError)) throw err;
      return this.refuse(err.message);
    }
    this.warnOfOpenServiceListeners(next, this.current);
    if (!sameConfig(next.listen, this.current.listen)) this.log.warn('`listen` changed: the new addresses apply when norikae-splice is restarted');
    if (!sameConfig(next.https, this.current.https)) this.log.warn('`https` changed: the new addresses apply when norikae-splice is restarted');
    this.current = next;
    await this.warnOfNamesOutsideCa(next);
    this.log.info(`config reloaded (${why})${summary ? `: ${summary}` : ''}`);
    return 'applied';
  }

  /** An edit that is not applied: said, with where it went wrong when that is known. */
  private refuse(message: string, codeFrame?: string): 'refused' {
    this.log.error(`${message} (keeping the running config)${codeFrame ? `\n${codeFrame.replace(/\n$/, '')}` : ''}`);
    this.supervisor.setReloadError(codeFrame ? `${message}\n${codeFrame.replace(/\n$/, '')}` : message);
    return 'refused';
  }

  /** The lines of a start: routes, addresses, the dashboard, and what deserves a warning. */
  private announce(bound: ListenAddress[]): void {
    const config = this.current;
    infoLines(this.log, routingTable(config, bound[0]?.port));
    for (const address of bound) this.log.info(`listening on http://${formatAddress(address)} (and https://)`);
    for (const address of this.server.httpsAddresses()) this.log.info(`listening on https://${formatAddress(address)} (and http://)`);
    for (const service of config.services) {
      for (const address of this.server.serviceAddresses(service.name)) this.log.info(`${service.name} listening on tcp ${formatAddress(address)}`);
    }
    if (config.dashboardHost !== undefined && bound[0] !== undefined) {
      this.log.info(`dashboard on ${serviceUrl(config.dashboardHost, bound[0].port)}/`);
    }
    if (bound.some((address) => !isLoopback(address.host))) {
      this.log.warn('listening beyond loopback: every machine that can reach this address can start the configured commands');
    }
    this.warnOfOpenServiceListeners(config);
    for (const warning of configWarnings(config)) this.log.warn(formatWarning(config.file, warning));
  }

  /**
   * A warning for each name whose TLS norikae terminates that the local CA (if it exists yet: it
   * is made on first need, for the names configured then) may not sign for.
   */
  private async warnOfNamesOutsideCa(config: Config): Promise<void> {
    let ca;
    try {
      ca = await loadCa(this.server.certificates.dir);
    } catch (err) {
      this.log.warn(err instanceof Error ? err.message : String(err));
      return;
    }
    if (ca === undefined) return;
    const outside = config.services.filter((service) => service.tls === 'terminate')
      .flatMap((service) => service.hosts.map((host) => (host.startsWith('*.') ? host.slice(2) : host)))
      .filter((host) => !permits(ca, host));
    if (outside.length === 0) return;
    this.log.warn(`the local CA may not sign for ${outside.join(', ')} (it covers ${ca.permittedNames.join(', ')}), so HTTPS is not served for `
      + `${outside.length === 1 ? 'it' : 'them'}: run \`norikae-splice trust --renew\` to make a CA that covers ${outside.length === 1 ? 'it' : 'them'}, and trust it again`);
  }

  /** A warning for each service listener beyond loopback (that `before` did not have already). */
  private warnOfOpenServiceListeners(config: Config, before?: Config): void {
    const known = new Set(serviceListenAddresses(before?.services ?? []).map(({ service, address }) => `${service.name} ${formatAddress(address)}`));
    for (const { service, address } of serviceListenAddresses(config.services)) {
      if (isLoopback(address.host) || known.has(`${service.name} ${formatAddress(address)}`)) continue;
      this.log.warn(`${service.name} listens beyond loopback on ${formatAddress(address)}: every machine that can reach it can start its command`);
    }
  }
}

/**
 * Starts norikae-splice on a config file: cleans up what a killed instance left, binds every
 * listener, and watches the file for edits. Rejects with a ConfigError, a ListenError, or an
 * AlreadyRunningError (another norikae-splice runs this config).
 */
export function startApp(options: StartAppOptions = {}): Promise<App> {
  return App.start(options);
}

/**
 * Who may use the API: our uid, or whoever shows the key written now into the state folder (after
 * the check that no other norikae runs this config, whose key it would replace).
 */
function apiAccess(config: Config, log: Log): ApiAccess {
  const file = apiKeyFile(stateDir(), config.file);
  let key: string;
  try {
    key = createApiKey(file);
  } catch (err) {
    log.warn(`cannot write the API key to ${file} (${(err as Error).message}): only connections known to be yours can use the dashboard's API`);
    key = randomBytes(32).toString('base64url');
  }
  return new ApiAccess(key, configId(config.file));
}

/** The config the options name, with `listen` replaced (before its addresses are checked). */
function readConfig(options: StartAppOptions, reuse: ConfigReuse): Config {
  return loadConfig(findConfigFile(options.config), { listen: options.listen, https: options.https }, reuse);
}
