// `norikae-splice service install | uninstall | status`: the startup service of a config. On Linux,
// systemd socket units and a service (service-units.ts), enabled with systemctl: systemd holds the
// ports from login (or boot, with --system) and starts norikae-splice on the first connection. On
// macOS, a launchd job started at login. Where systemctl cannot run (no systemd as PID 1), the
// units are written and the exact commands to run are said, with a non-zero exit.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ListenAddress } from './address.js';
import { formatAddress } from './address.js';
import type { Config } from './config.js';
import { ServiceInstallError, shellWord } from './errors.js';
import { LAUNCHD_LABEL, launchdPlist, SERVICE_UNIT, systemdUnits, type ServicePlan, type UnitFile } from './service-units.js';

export type ServiceAction = 'install' | 'uninstall' | 'status';

export interface ServiceCommandOptions {
  action: ServiceAction;
  config: Config;
  /** `--listen` as given: the service starts with it too. */
  listenArgs: ListenAddress[] | undefined;
  /** A system-level unit (binds ports below 1024; needs root), run as the invoking user. */
  system: boolean;
  /** Print what would be written and run; change nothing. */
  dryRun: boolean;
  /** Write the units here instead (tests): nothing is enabled. */
  unitDir: string | undefined;
  node: string;
  bin: string;
  /** Where the lines for the user go (stdout). */
  print: (line: string) => void;
  platform?: NodeJS.Platform;
  /** Whether systemd runs as PID 1 (default: /run/systemd/system exists, as sd_booted() checks). */
  systemdRunning?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Runs the action; returns the exit code. Throws a ServiceInstallError for what the user must change. */
export function runServiceCommand(options: ServiceCommandOptions): number {
  const platform = options.platform ?? process.platform;
  if (platform === 'linux') return new SystemdUnits(options).run();
  if (platform === 'darwin') return new LaunchdJob(options).run();
  throw new ServiceInstallError(`norikae-splice service supports Linux (systemd) and macOS (launchd), not ${platform}; start norikae-splice at login yourself`);
}

/** What both kinds of startup service need: the plan, the folder, printing and running commands. */
abstract class StartupService {
  protected readonly plan: ServicePlan;
  protected readonly dir: string;
  protected readonly env: NodeJS.ProcessEnv;

  constructor(protected readonly options: ServiceCommandOptions) {
    this.env = options.env ?? process.env;
    const user = options.system ? this.env.SUDO_USER ?? userInfo().username : undefined;
    this.plan = { config: options.config, node: options.node, bin: options.bin, listenArgs: options.listenArgs, systemUser: user, path: this.env.PATH ?? '/usr/bin:/bin' };
    this.dir = options.unitDir ?? this.defaultDir();
  }

  abstract run(): number;
  protected abstract defaultDir(): string;

  /** Writes the files, or says exactly why it cannot (a system folder needs root). */
  protected write(files: UnitFile[]): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      for (const file of files) writeFileSync(join(this.dir, file.name), file.text, { mode: 0o644 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new ServiceInstallError(`cannot write ${this.dir}: ${this.options.system ? 'a system-level service needs root' : 'permission denied'}. `
          + `Run: sudo ${this.rerun()}`, { cause: err });
      }
      throw new ServiceInstallError(`cannot write ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** This command again, with absolute paths (for sudo, or for another shell). */
  protected rerun(): string {
    const { options } = this;
    return [options.node, options.bin, 'service', options.action, '--config', options.config.file,
      ...(options.listenArgs ?? []).flatMap((address) => ['--listen', formatAddress(address)]), ...(options.system ? ['--system'] : [])].map(shellWord).join(' ');
  }

  /** Runs a command, its output shown; returns its exit status. */
  protected exec(command: string[]): number {
    this.options.print(`$ ${command.map(shellWord).join(' ')}`);
    const result = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit', env: this.env });
    if (result.error !== undefined) {
      this.options.print(`${command[0]} could not be run: ${result.error.message}`);
      return 1;
    }
    return result.status ?? 1;
  }

  /** Runs the commands in order, stopping at the first that fails; its status, or 0. */
  protected execAll(commands: string[][]): number {
    for (const command of commands) {
      const status = this.exec(command);
      if (status !== 0) return status;
    }
    return 0;
  }

  /** The commands that would have been run, for whoever can run them; exit status 1 (0 for a dry run). */
  protected sayToRun(why: string, commands: string[][]): number {
    this.options.print(`${why}:`);
    for (const command of commands) this.options.print(`  ${command.map(shellWord).join(' ')}`);
    return this.options.dryRun ? 0 : 1;
  }

  protected refusePortZero(): void {
    const { config } = this.options;
    const zero = [...(this.options.listenArgs ?? config.listen), ...config.services.flatMap((service) => service.listen)].find((address) => address.port === 0);
    if (zero !== undefined) throw new ServiceInstallError(`${formatAddress(zero)}: a startup service needs fixed ports, not 0`);
  }
}

/** systemd: one socket unit per listener, one service unit (see service-units.ts). */
class SystemdUnits extends StartupService {
  protected defaultDir(): string {
    if (this.options.system) return '/etc/systemd/system';
    return join(this.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'systemd', 'user');
  }

  run(): number {
    switch (this.options.action) {
      case 'install': return this.install();
      case 'uninstall': return this.uninstall();
      case 'status': return this.status();
    }
  }

  private get systemctl(): string[] {
    return this.options.system ? ['systemctl'] : ['systemctl', '--user'];
  }

  private get running(): boolean {
    return this.options.systemdRunning ?? existsSync('/run/systemd/system');
  }

  /** The units of ours in the folder now: sockets of this or an earlier install, and the service. */
  private installed(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => name === SERVICE_UNIT || /^norikae-splice-.+\.socket$/.test(name)).sort();
    } catch {
      return [];
    }
  }

  private install(): number {
    this.refusePortZero();
    const units = systemdUnits(this.plan);
    const sockets = units.filter(({ name }) => name.endsWith('.socket')).map(({ name }) => name);
    const stale = this.installed().filter((name) => name.endsWith('.socket') && !sockets.includes(name));
    const commands = [
      ...(stale.length > 0 ? [[...this.systemctl, 'disable', '--now', ...stale]] : []),
      [...this.systemctl, 'daemon-reload'],
      [...this.systemctl, 'enable', '--now', ...sockets],
      // An instance already running keeps its old sockets and config: restart it (only if it runs).
      [...this.systemctl, 'try-restart', SERVICE_UNIT],
    ];
    if (this.options.dryRun) {
      for (const unit of units) this.options.print(`# ${join(this.dir, unit.name)}\n${unit.text}`);
      if (stale.length > 0) this.options.print(`# would remove ${stale.map((name) => join(this.dir, name)).join(', ')} (listeners no longer in the config)`);
      return this.sayToRun('# dry run: nothing was written; then these would run', commands);
    }
    if (this.options.system) this.options.print(`a system-level service: writing ${this.dir} needs root (sudo); norikae-splice itself runs as ${this.plan.systemUser}`);
    if (stale.length > 0 && this.running && this.options.unitDir === undefined) this.exec(commands[0]!);
    for (const name of stale) rmSync(join(this.dir, name), { force: true });
    this.write(units);
    for (const unit of units) this.options.print(`wrote ${join(this.dir, unit.name)}`);
    if (this.options.unitDir !== undefined) {
      this.options.print(`${this.dir} is not systemd's folder: nothing was enabled`);
      return 0;
    }
    if (!this.running) return this.sayToRun('systemd is not running here (no /run/systemd/system), so the units were written but not enabled. Where systemd runs, run', commands.slice(stale.length > 0 ? 1 : 0));
    const status = this.execAll(commands.slice(stale.length > 0 ? 1 : 0));
    if (status !== 0) return status;
    const addresses = units.filter(({ name }) => name.endsWith('.socket')).map(({ text }) => /^ListenStream=(.*)$/m.exec(text)![1]).join(', ');
    this.options.print(`installed: systemd listens on ${addresses} and starts norikae-splice on the first connection`);
    this.options.print(`its log: journalctl ${this.options.system ? '' : '--user '}-u ${SERVICE_UNIT}`);
    if (!this.options.system) this.options.print(`to listen also while you are logged out: loginctl enable-linger ${userInfo().username}`);
    return 0;
  }

  private uninstall(): number {
    const installed = this.installed();
    if (installed.length === 0) {
      this.options.print(`nothing to uninstall: no norikae-splice units in ${this.dir}`);
      return 0;
    }
    const files = installed.map((name) => join(this.dir, name));
    const commands = [[...this.systemctl, 'disable', '--now', ...installed], ['rm', ...files], [...this.systemctl, 'daemon-reload']];
    if (this.options.dryRun) return this.sayToRun('# dry run: nothing was changed; these would run', commands);
    if (this.options.unitDir === undefined) {
      if (!this.running) return this.sayToRun('systemd is not running here (no /run/systemd/system), so the units were not disabled, nor removed. Where systemd runs, run', commands);
      const status = this.exec(commands[0]!);
      if (status !== 0) return status;
    }
    try {
      for (const file of files) rmSync(file, { force: true });
    } catch (err) {
      throw new ServiceInstallError(`cannot remove the units in ${this.dir}: ${(err as Error).message}. Run: sudo ${this.rerun()}`, { cause: err });
    }
    for (const file of files) this.options.print(`removed ${file}`);
    return this.options.unitDir === undefined ? this.exec(commands[2]!) : 0;
  }

  private status(): number {
    const installed = this.installed();
    if (installed.length === 0) {
      this.options.print(`not installed: no norikae-splice units in ${this.dir}. Install with: ${this.rerun().replace(' service status ', ' service install ')}`);
      return 1;
    }
    for (const name of installed) this.options.print(`installed: ${join(this.dir, name)}`);
    const sockets = installed.filter((name) => name.endsWith('.socket'));
    if (this.options.unitDir !== undefined) return 0;
    if (!this.running) return this.sayToRun('systemd is not running here (no /run/systemd/system), so it cannot say whether they are enabled. Where systemd runs, run', [[...this.systemctl, 'status', '--no-pager', SERVICE_UNIT, ...sockets]]);
    this.exec([...this.systemctl, 'status', '--no-pager', SERVICE_UNIT, ...sockets]);
    // Inactive service is normal (it starts on the first connection): the sockets are what must be up.
    return this.exec([...this.systemctl, 'is-active', '--quiet', ...sockets]) === 0 ? 0 : 3;
  }
}

/** launchd (macOS): a job run at login (LaunchAgents) or at boot as the user (LaunchDaemons, --system). */
class LaunchdJob extends StartupService {
  protected defaultDir(): string {
    return this.options.system ? '/Library/LaunchDaemons' : join(homedir(), 'Library', 'LaunchAgents');
  }

  private get file(): string {
    return join(this.dir, `${LAUNCHD_LABEL}.plist`);
  }

  private get domain(): string {
    return this.options.system ? 'system' : `gui/${userInfo().uid}`;
  }

  run(): number {
    const { action, dryRun } = this.options;
    if (action === 'status') {
      if (!existsSync(this.file)) {
        this.options.print(`not installed: no ${this.file}`);
        return 1;
      }
      this.options.print(`installed: ${this.file}`);
      return this.options.unitDir === undefined ? this.exec(['launchctl', 'print', `${this.domain}/${LAUNCHD_LABEL}`]) : 0;
    }
    if (action === 'uninstall') {
      if (dryRun) return this.sayToRun('# dry run: nothing was changed; these would run', [['launchctl', 'bootout', `${this.domain}/${LAUNCHD_LABEL}`], ['rm', this.file]]);
      if (this.options.unitDir === undefined) this.exec(['launchctl', 'bootout', `${this.domain}/${LAUNCHD_LABEL}`]);
      rmSync(this.file, { force: true });
      this.options.print(`removed ${this.file}`);
      return 0;
    }
    const logFile = this.options.system ? '/Library/Logs/norikae-splice.log' : join(homedir(), 'Library', 'Logs', 'norikae-splice.log');
    const plist = { name: `${LAUNCHD_LABEL}.plist`, text: launchdPlist(this.plan, logFile) };
    const commands = [['launchctl', 'bootout', `${this.domain}/${LAUNCHD_LABEL}`], ['launchctl', 'bootstrap', this.domain, this.file]];
    if (dryRun) {
      this.options.print(`# ${this.file}\n${plist.text}`);
      return this.sayToRun('# dry run: nothing was written; then these would run', commands);
    }
    this.write([plist]);
    this.options.print(`wrote ${this.file}`);
    if (this.options.unitDir !== undefined) return 0;
    this.exec(commands[0]!); // not loaded yet is fine
    const status = this.exec(commands[1]!);
    if (status === 0) this.options.print(`installed: norikae-splice starts at ${this.options.system ? 'boot' : 'login'}; its log: ${logFile}`);
    return status;
  }
}
