#!/usr/bin/env node
// The command line: find and load the config, then either check it (`check`) or run the proxy
// until SIGINT/SIGTERM. Every error a user can cause ends in one clear line and a non-zero exit.

import { readFileSync } from 'node:fs';
import { cac } from 'cac';
import { findAddressClash, formatAddress, isLoopback, parseListenAddress, serviceUrl, type ListenAddress } from '../lib/address.js';
import { configKey, sameConfig, stateDir, type Config } from '../lib/config.js';
import { findConfigFile, loadConfig } from '../lib/config-file.js';
import { configWarnings, formatWarning } from '../lib/config-warnings.js';
import { ConfigError, ListenError, NorikaeError } from '../lib/errors.js';
import { streamLog } from '../lib/log.js';
import { watchConfigFile } from '../lib/config-watcher.js';
import { ControlClient } from '../lib/control-client.js';
import { Dashboard } from '../lib/dashboard.js';
import { LaunchRecord, launchRecordFile } from '../lib/launch-record.js';
import { runningInstance } from '../lib/running-instance.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor, type ServiceInfo } from '../lib/supervisor.js';

interface CliOptions {
  config?: string;
  listen?: string | number | (string | number)[];
  serviceOutput?: boolean;
}

const log = streamLog();
// A terminal that was closed makes every write fail (EIO); that must not crash norikae before it
// has stopped its services. Only the commands print to stdout: `logs -f | head` ends with head.
process.stderr.on('error', () => {});
process.stdout.on('error', () => process.exit(0));
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const cli = cac('norikae-splice');
cli.option('-c, --config <file>', 'Config file (default: ./norikae.toml, then $XDG_CONFIG_HOME/norikae/config.toml)');
// --listen means where to listen when norikae runs, and where to find it for the commands to it.
const LISTEN_RUN = 'Listen on host:port or a port instead of the config\'s `listen` (repeatable)';
const LISTEN_CHECK = 'Check the config as if run with this --listen (host:port or a port, repeatable)';
const LISTEN_CLIENT = 'Where the running norikae-splice listens (host:port or a port), if not where its state file says';

cli.command('', 'Run the proxy')
  .option('--listen <address>', LISTEN_RUN)
  .option('--service-output', 'Also print the services\' own output, prefixed with their name')
  .action(async (options: CliOptions) => {
    const config = readConfig(options);
    const record = new LaunchRecord(launchRecordFile(stateDir(), config.file));
    const supervisor = new ServiceSupervisor(config, { log, echoOutput: options.serviceOutput === true, record });
    await supervisor.cleanOrphans();
    const server = new SpliceServer(config, { log, connector: supervisor, dashboard: new Dashboard(supervisor) });
    const bound = await server.listen();
    record.setListening(bound);
    printRoutingTable(config, bound[0]?.port, (line) => log.info(line));
    for (const address of bound) log.info(`listening on http://${formatAddress(address)}`);
    for (const service of config.services) {
      for (const address of server.serviceAddresses(service.name)) log.info(`${service.name} listening on tcp ${formatAddress(address)}`);
    }
    if (config.dashboardHost !== undefined && bound[0] !== undefined) {
      log.info(`dashboard on ${serviceUrl(config.dashboardHost, bound[0].port)}/`);
    }
    if (bound.some((address) => !isLoopback(address.host))) {
      log.warn('listening beyond loopback: every machine that can reach this address can start the configured commands');
    }
    warnOfOpenServiceListeners(config);
    for (const warning of configWarnings(config)) log.warn(formatWarning(config.file, warning));

    // Hot reload: a good edit applies without dropping a connection; a bad one changes nothing.
    let current = config;
    /** The last edit was refused: a save that brings the file back to `current` deserves a word. */
    let refused = false;
    let reloading = Promise.resolve();
    /** An edit that is not applied: said, with where it went wrong when that is known. */
    const refuse = (message: string, codeFrame?: string): void => {
      log.error(`${message} (keeping the running config)`);
      if (codeFrame) process.stderr.write(`${codeFrame.replace(/\n?$/, '\n')}`);
      refused = true;
    };
    const reload = (why: string): void => {
      reloading = reloading.then(async () => {
        let next: Config;
        try {
          next = readConfig(options);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          refuse(err.message, err.codeFrame);
          return;
        }
        // `listen` edits apply at the next start: what the edit must not clash with is what is bound now.
        const clash = findAddressClash({ ...next, listen: server.addresses() }, 'running');
        if (clash !== undefined) {
          refuse(`${next.file}: ${clash.message}`);
          return;
        }
        // Editors and file systems report saves that change nothing; those are not reloads.
        if (why === 'file changed' && sameConfig(next, current)) {
          if (refused) log.info('the config file is valid again, and the same as the running config: nothing to apply');
          refused = false;
          return;
        }
        const summary = describeChanges(current, next);
        try {
          // Binds new listeners first, then swaps the router and the supervisor's table in one tick.
          await server.reconfigure(next);
        } catch (err) {
          if (!(err instanceof ListenError)) throw err;
          refuse(err.message);
          return;
        }
        warnOfOpenServiceListeners(next, current);
        current = next;
        refused = false;
        log.info(`config reloaded (${why})${summary ? `: ${summary}` : ''}`);
      }).catch((err: unknown) => log.error(`reload failed: ${String(err)}`));
    };
    const stopWatching = watchConfigFile(config.file, () => reload('file changed'));
    // In a terminal, SIGHUP is the terminal closing: exit like Ctrl-C (the file watch reloads
    // anyway). Run as a daemon (no terminal), it is the usual "reload your config".
    const hangupExits = process.stderr.isTTY === true;
    if (!hangupExits) process.on('SIGHUP', () => reload('SIGHUP'));

    exitOnSignals(async () => {
      stopWatching();
      await server.close();
      await supervisor.stopAll();
    }, () => supervisor.killAllNow(), hangupExits);
    // A bug of ours must not leave the services running without anyone to stop them.
    process.on('uncaughtException', (err) => {
      supervisor.killAllNow();
      log.error(`norikae-splice crashed; its services were killed: ${err.stack ?? String(err)}`);
      process.exit(70);
    });
  });

cli.command('check', 'Validate the config, print the routing table, and exit').option('--listen <address>', LISTEN_CHECK).action((options: CliOptions) => {
  const config = readConfig(options);
  printRoutingTable(config, config.listen[0]?.port, (line) => process.stdout.write(`${line}\n`));
  // What will fail at launch is said, but the config is still valid: warnings, exit 0.
  for (const warning of configWarnings(config)) log.warn(formatWarning(config.file, warning));
  process.stdout.write('config is valid\n');
});

cli.command('status', 'Show the services of the running norikae-splice').option('--listen <address>', LISTEN_CLIENT).action(async (options: CliOptions) => {
  const client = controlClient(options);
  const services = await client.services();
  const rows = [['NAME', 'STATE', 'PID', 'PORT', 'CONNS', 'UPTIME', 'URL']];
  for (const service of services) {
    rows.push([
      service.name,
      service.stoppedByUser ? `${service.state} (by you)` : service.pendingRestart ? `${service.state} (restart to apply)` : service.state,
      String(service.pid ?? '-'),
      String(service.port ?? '-'),
      String(service.connections),
      service.startedAt === null ? '-' : formatDuration(Date.now() - service.startedAt),
      whereToOpen(service, client.port),
    ]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
});

cli.command('logs <name>', 'Print the recent output of a service')
  .option('--listen <address>', LISTEN_CLIENT)
  .option('-n, --lines <count>', 'How many lines', { default: 50 })
  .option('-f, --follow', 'Keep printing new lines')
  .action(async (name: string, options: CliOptions & { lines: number; follow?: boolean }) => {
    const client = controlClient(options);
    const lines = Number(options.lines);
    if (!Number.isInteger(lines) || lines < 0) fail(`--lines ${options.lines}: expected a whole number of lines, 0 or more`);
    if (!options.follow) {
      for (const line of await client.logs(name, lines)) process.stdout.write(`${line}\n`);
      return;
    }
    // One stream: the recent lines, then every new one, with none missed in between.
    await client.logs(name, 1); // says "no service named …" clearly before following
    await client.events((event, data) => {
      const entry = data as { name: string; line: string };
      if (event === 'log' && entry.name === name) process.stdout.write(`${entry.line}\n`);
    }, { name, lines });
    log.info('norikae-splice stopped; no more lines to follow');
  });

for (const action of ['start', 'stop', 'restart'] as const) {
  cli.command(`${action} <name>`, `${action[0]!.toUpperCase()}${action.slice(1)} a service of the running norikae-splice`)
    .option('--listen <address>', LISTEN_CLIENT)
    .action(async (name: string, options: CliOptions) => {
      const service = await controlClient(options).control(name, action);
      process.stdout.write(`${service.name}: ${service.state}${service.pid ? ` (pid ${service.pid})` : ''}\n`);
    });
}

cli.addEventListener('command:*', () => {
  fail(`unknown command "${cli.args[0]}"; run norikae-splice --help for the commands`);
});
cli.help();
cli.version(version);

try {
  cli.parse(process.argv, { run: false });
  await cli.runMatchedCommand();
} catch (err) {
  handleError(err);
}

/**
 * Loads the config the options point to, with `--listen` applied (before its addresses are
 * checked). `forRunning`: for a command to the running instance, which is past those checks (it
 * may run with a --listen the command is not given).
 */
function readConfig(options: CliOptions, forRunning = false): Config {
  let listen: ListenAddress[] | undefined;
  if (options.listen !== undefined) {
    const values = Array.isArray(options.listen) ? options.listen : [options.listen];
    listen = values.map((value): ListenAddress => {
      const address = parseListenAddress(value);
      if (typeof address === 'string') fail(`--listen ${value}: ${address}`);
      return address;
    });
  }
  return loadConfig(findConfigFile(options.config), { listen, checkAddresses: !forRunning });
}

/** A client of the norikae running this config: where it says it listens, unless --listen says where to look. */
function controlClient(options: CliOptions): ControlClient {
  const config = readConfig(options, true);
  const running = options.listen === undefined ? runningInstance(launchRecordFile(stateDir(), config.file)) : undefined;
  return new ControlClient(config, running?.listening[0]);
}

/** One line per service: where it is reached (on the first HTTP listener's `port`) and where it goes. */
function printRoutingTable(config: Config, port: number | undefined, print: (line: string) => void): void {
  print(`config ${config.file}`);
  const width = Math.max(0, ...config.services.map((service) => service.name.length));
  for (const service of config.services) {
    const upstream = service.port === undefined ? 'a free port chosen at launch' : `${service.upstream ?? '127.0.0.1'}:${service.port}`;
    const from = [
      ...service.hosts.map((host) => serviceUrl(host, port)),
      ...service.listen.map((address) => `tcp ${formatAddress(address)}`),
    ];
    print(`  ${service.name.padEnd(width)}  ${from.join(', ')} → ${upstream}${service.command ? `  (command: ${service.command})` : ''}`);
  }
  if (config.services.length === 0) print('  (no services configured)');
}

/** `added a, b; removed c; changed d` between two configs, or '' when no service changed. */
function describeChanges(before: Config, after: Config): string {
  const old = new Map(before.services.map((service) => [service.name, configKey(service)]));
  const now = new Map(after.services.map((service) => [service.name, configKey(service)]));
  const added = [...now.keys()].filter((name) => !old.has(name));
  const removed = [...old.keys()].filter((name) => !now.has(name));
  const changed = [...now.keys()].filter((name) => old.has(name) && old.get(name) !== now.get(name));
  return [
    added.length ? `added ${added.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
    changed.length ? `changed ${changed.join(', ')}` : '',
  ].filter(Boolean).join('; ');
}

/** The status column URL: the service's first exact host, else its first wildcard (as the dashboard shows it), else its tcp listener. */
function whereToOpen(service: ServiceInfo & { urls?: string[] }, port: number): string {
  const host = service.hosts[0];
  return service.urls?.[0] ?? (host === undefined ? undefined : `${serviceUrl(host, port)}/`) ?? service.listen[0] ?? '';
}

function formatDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

/** First SIGINT/SIGTERM (and SIGHUP, if `hangup`) closes gracefully; a second one kills what is left and exits at once. */
function exitOnSignals(close: () => Promise<void>, killNow: () => void, hangup: boolean): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      killNow();
      process.exit(130);
    }
    closing = true;
    log.info(`${signal}: closing`);
    close().then(() => process.exit(0), (err) => {
      log.error(String(err));
      process.exit(1);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (hangup) process.on('SIGHUP', onSignal);
}

function handleError(err: unknown): never {
  if (err instanceof ConfigError) {
    log.error(err.message);
    if (err.codeFrame) process.stderr.write(`${err.codeFrame.replace(/\n?$/, '\n')}`);
    process.exit(2);
  }
  if (err instanceof NorikaeError) fail(err.message);
  if (err instanceof Error && err.name === 'CACError') {
    const unused = /^Unused args: `([^`]*)`/.exec(err.message);
    const command = cli.matchedCommand?.name;
    // Extra words after a command are not a command of their own: `stop a b` is `stop` given two names.
    if (unused && command) fail(`${command} takes ${cli.matchedCommand!.args.length === 0 ? 'no arguments' : 'one service name'}; got "${cli.args.join(' ')}"`);
    fail(unused ? `unknown command "${unused[1]}"; run norikae-splice --help for the commands` : `${err.message.replace(/`/g, '"')}; run norikae-splice --help for the options`);
  }
  throw err;
}

function fail(message: string): never {
  log.error(message);
  process.exit(1);
}

/** A warning for each service listener beyond loopback (that `before` did not have already). */
function warnOfOpenServiceListeners(config: Config, before?: Config): void {
  const known = new Set(before?.services.flatMap((service) => service.listen.map((address) => `${service.name} ${formatAddress(address)}`)));
  for (const service of config.services) {
    for (const address of service.listen) {
      if (isLoopback(address.host) || known.has(`${service.name} ${formatAddress(address)}`)) continue;
      log.warn(`${service.name} listens beyond loopback on ${formatAddress(address)}: every machine that can reach it can start its command`);
    }
  }
}
