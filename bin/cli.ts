#!/usr/bin/env node
// The command line: find and load the config, then either check it (`check`) or run the proxy
// until SIGINT/SIGTERM. Every error a user can cause ends in one clear line and a non-zero exit.
// The command users run, dist/bin/norikae-splice.js, is this file and what it imports bundled
// into one (`npm run bundle`): Node loads that with about 40 ms less CPU than ~70 modules, and a
// start is mostly loading. Each command still imports its own modules when it runs, so in the
// bundle their code is only evaluated then (the tests check that on dist/bin/cli.js itself).

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cac } from 'cac';
import { parseListenAddress, serviceUrl, type ListenAddress } from '../lib/address.js';
import { stateDir, type Config } from '../lib/config.js';
import { checkResolvedAddresses, findConfigFile, loadConfig } from '../lib/config-file.js';
import { routingTable } from '../lib/config-summary.js';
import { configWarnings, formatWarning } from '../lib/config-warnings.js';
import { ConfigError, NorikaeError } from '../lib/errors.js';
import { HOSTS_FILE } from '../lib/hosts-file.js';
import { streamLog } from '../lib/log.js';
import type { ControlClient } from '../lib/control-client.js';
import type { ServiceAction } from '../lib/service-install.js';
import type { ServiceInfo } from '../lib/supervisor.js';
// The rest of lib/ is imported by the commands that use it (`await import` in their action): a
// `check` or a start loads only its own part of the module graph, which is most of its time.

interface CliOptions {
  config?: string;
  listen?: string | number | (string | number)[];
  https?: string | number | (string | number)[];
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
  .option('--https <address>', 'Also listen for HTTPS on host:port or a port, instead of the config\'s `https` (repeatable)')
  .option('--service-output', 'Also print the services\' own output, prefixed with their name')
  .action(async (options: CliOptions) => {
    const [{ startApp }, { inheritedSockets, InheritedListeners }] = await Promise.all([import('../lib/app.js'), import('../lib/socket-activation.js')]);
    // Sockets systemd passed (socket activation); the variables are unset either way, so services do not inherit them.
    const inherited = new InheritedListeners(inheritedSockets());
    const onIdle = (): void => void app.close().then(() => process.exit(0), (err: unknown) => {
      log.error(String(err));
      process.exit(1);
    });
    const app = await startApp({
      config: options.config, listen: listenOption(options), https: addressOption(options.https, '--https'), serviceOutput: options.serviceOutput === true, log, inherited, onIdle,
    });
    // In a terminal, SIGHUP is the terminal closing: exit like Ctrl-C (the file watch reloads
    // anyway). Run as a daemon (no terminal), it is the usual "reload your config".
    const hangupExits = process.stderr.isTTY === true;
    if (!hangupExits) process.on('SIGHUP', () => void app.reload('SIGHUP').catch((err: unknown) => log.error(`reload failed: ${String(err)}`)));
    exitOnSignals(() => app.close(), () => app.killNow(), hangupExits);
    // A bug of ours must not leave the services running without anyone to stop them.
    process.on('uncaughtException', (err) => {
      app.killNow();
      log.error(`norikae-splice crashed; its services were killed: ${err.stack ?? String(err)}`);
      process.exit(70);
    });
  });

cli.command('check', 'Validate the config, print the routing table, and exit').option('--listen <address>', LISTEN_CHECK)
  .option('--https <address>', 'Check the config as if run with this --https').action(async (options: CliOptions) => {
  const config = readConfig(options);
  await checkResolvedAddresses(config, listenOption(options) === undefined ? 'file' : 'cli');
  // One write: a table of 1,000 services is 1,000 lines.
  process.stdout.write(routingTable(config, config.listen[0]?.port).map((line) => `${line}\n`).join(''));
  // What will fail at launch is said, but the config is still valid: warnings, exit 0.
  for (const warning of configWarnings(config)) log.warn(formatWarning(config.file, warning));
  process.stdout.write('config is valid\n');
});

cli.command('status', 'Show the services of the running norikae-splice').option('--listen <address>', LISTEN_CLIENT).action(async (options: CliOptions) => {
  const client = await controlClient(options);
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
  // Why a launch failed does not fit a column: it follows the table, one service a line.
  const failures = services.filter((service) => service.lastError !== null && service.lastError !== undefined);
  if (failures.length > 0) process.stdout.write('\n');
  for (const service of failures) process.stdout.write(`${service.name} failed to start: ${service.lastError}\n`);
});

cli.command('logs <name>', 'Print the recent output of a service')
  .option('--listen <address>', LISTEN_CLIENT)
  .option('-n, --lines <count>', 'How many lines', { default: 50 })
  .option('-f, --follow', 'Keep printing new lines')
  .action(async (name: string, options: CliOptions & { lines: number; follow?: boolean }) => {
    const client = await controlClient(options);
    const lines = Number(options.lines);
    if (!Number.isInteger(lines) || lines < 0) fail(`--lines ${options.lines}: expected a whole number of lines, 0 or more`);
    if (!options.follow) {
      for (const line of await client.logs(name, lines)) process.stdout.write(`${line}\n`);
      return;
    }
    // One stream: the recent lines, then every new one, with none missed in between.
    await client.logs(name, 1); // says "no service named …" clearly before following
    await client.events((event, data) => {
      const entry = data as { name: string; line?: string; lines?: number };
      if (entry.name !== name) return;
      if (event === 'log') process.stdout.write(`${entry.line}\n`);
      // It did not read fast enough (suspended with Ctrl-Z, say): norikae dropped lines rather than buffer them.
      else if (event === 'dropped') process.stdout.write(`… ${entry.lines} lines dropped: this follower fell behind …\n`);
    }, { name, lines });
    log.info('norikae-splice stopped; no more lines to follow');
  });

for (const action of ['start', 'stop', 'restart'] as const) {
  cli.command(`${action} <name>`, `${action[0]!.toUpperCase()}${action.slice(1)} a service of the running norikae-splice`)
    .option('--listen <address>', LISTEN_CLIENT)
    .action(async (name: string, options: CliOptions) => {
      const service = await (await controlClient(options)).control(name, action);
      process.stdout.write(`${service.name}: ${service.state}${service.pid ? ` (pid ${service.pid})` : ''}\n`);
    });
}

cli.command('init', 'Write a commented starter config (at $XDG_CONFIG_HOME/norikae/config.toml, or ./norikae.toml with --here)')
  .option('--here', 'Write ./norikae.toml instead')
  .option('--listen <address>', 'The address it listens on (default 127.0.0.1:80)')
  .action(async (options: CliOptions & { here?: boolean }) => {
    const { starterConfigFile, writeStarterConfig } = await import('../lib/starter-config.js');
    const file = options.config !== undefined ? findConfigFile(options.config) : starterConfigFile({ here: options.here === true });
    const listen = listenOption(options);
    if (listen !== undefined && listen.length !== 1) fail('init takes one --listen address');
    writeStarterConfig(file, listen?.[0]);
    process.stdout.write(`wrote ${file}\nnext: norikae-splice add DIR (for each project), then norikae-splice doctor\n`);
    const shadow = join(process.cwd(), 'norikae.toml');
    if (file !== shadow && existsSync(shadow)) log.warn(`${shadow} is read first in this folder: norikae-splice uses it, not ${file}, when run here without --config`);
  });

cli.command('add [dir]', 'Add a project (default: this folder) to the config as a [service.NAME] block')
  .option('--name <name>', 'The service\'s name (default: the folder\'s), and so its host NAME.localhost')
  .option('--command <command>', 'The command that starts its dev server, with {port}, instead of the one detected')
  .option('--dry-run', 'Only show the block')
  .action(async (dir: string | undefined, options: CliOptions & { name?: string; command?: string; dryRun?: boolean }) => {
    const { addService } = await import('../lib/add-service.js');
    const result = addService({
      configFile: findConfigFile(options.config), dir: dir ?? '.', name: options.name === undefined ? undefined : String(options.name),
      command: options.command === undefined ? undefined : String(options.command), dryRun: options.dryRun === true,
    });
    process.stdout.write(`${result.block}\n`);
    process.stdout.write(result.written
      ? `added to ${result.file}: ${result.url}${result.branch === undefined ? '' : ` (branch ${result.branch})`}\n`
      : `not written (--dry-run); it would be added to ${result.file}\n`);
    for (const other of result.others) process.stdout.write(`also found ${other.kind} (${other.reason}): --command ${JSON.stringify(other.command)}\n`);
  });

cli.command('doctor', 'Check the config and this machine, and say how to fix what is wrong')
  .option('--listen <address>', LISTEN_CHECK)
  .option('--json', 'Print the report as JSON: { ok, checks: [{ name, ok, message, fix? }] }')
  .action(async (options: CliOptions & { json?: boolean }) => {
    const { formatCheck, runDoctor } = await import('../lib/doctor.js');
    const report = await runDoctor({ config: options.config, listen: listenOption(options) });
    if (options.json === true) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else for (const check of report.checks) process.stdout.write(`${formatCheck(check)}\n`);
    process.exitCode = report.ok ? 0 : 1;
  });

cli.command('hosts <action>', 'sync: write every configured host name into /etc/hosts (a marked block); clean: remove that block')
  .option('--hosts-file <file>', 'Another hosts file', { default: HOSTS_FILE })
  .option('--dry-run', 'Only print the diff')
  .action(async (action: string, options: CliOptions & { hostsFile: string; dryRun?: boolean }) => {
    const { updateHostsFile } = await import('../lib/hosts-file.js');
    if (action !== 'sync' && action !== 'clean') fail(`hosts ${action}: expected "hosts sync" or "hosts clean"`);
    const result = updateHostsFile(action, readConfig(options, true), { file: String(options.hostsFile), dryRun: options.dryRun === true });
    process.stdout.write(result.diff);
    if (!result.changed) process.stdout.write(`${result.file} is up to date\n`);
    else if (result.written) process.stdout.write(action === 'sync' ? `${result.file}: ${result.names.length} names on 127.0.0.1 and ::1\n` : `${result.file}: the norikae-splice block is removed\n`);
    else process.stdout.write(`not written (--dry-run)\n`);
  });

cli.command('ca', 'Print the local CA\'s root certificate (PEM), making the CA if there is none').action(async (options: CliOptions) => {
  const { dataDir, loadOrCreateCa } = await import('../lib/local-ca.js');
  const ca = await loadOrCreateCa(dataDir(), configuredNames(options));
  process.stdout.write(ca.rootPem);
});

cli.command('trust', 'Install the local CA\'s root in the system store and the browsers\' NSS databases')
  .option('--renew', 'Make a new CA first (for names the old one may not sign), and replace the old root')
  .option('--no-system', 'Leave the system store alone (no sudo): only the browsers\' NSS databases')
  .action(async (options: CliOptions & { renew?: boolean; system: boolean }) => {
    const [{ createCa, dataDir, loadCa, permits, removeCa, rootFile }, { missingTools, runSteps, trustSteps, untrustSteps }] = await Promise.all([
      import('../lib/local-ca.js'), import('../lib/trust-store.js'),
    ]);
    const dir = dataDir();
    const names = configuredNames(options);
    let ca = await loadCa(dir).catch((err: unknown) => {
      if (options.renew) return undefined; // an unusable CA is what --renew replaces
      throw err;
    });
    const print = (line: string): void => void process.stdout.write(`${line}\n`);
    if (options.renew && existsSync(rootFile(dir))) {
      print(`removing the old root (${rootFile(dir)}):`);
      runSteps(untrustSteps(rootFile(dir), { system: options.system }), print);
      removeCa(dir);
      ca = undefined;
    }
    ca ??= await createCa(dir, names);
    print(`local CA: ${rootFile(dir)} (it may sign for ${ca.permittedNames.join(', ')}, 127.0.0.0/8 and ::1)`);
    const outside = names.filter((name) => !permits(ca, name.replace(/^\*\./, '')));
    if (outside.length > 0) log.warn(`this CA may not sign for ${outside.join(', ')}: run \`norikae-splice trust --renew\` to make one that may`);
    const missing = missingTools();
    if (missing !== undefined) log.warn(missing);
    const done = runSteps(trustSteps(rootFile(dir), { system: options.system }), print);
    print(`\nFor Node.js clients (they do not read the system store): export NODE_EXTRA_CA_CERTS=${rootFile(dir)}`);
    if (!done) process.exit(1);
    print('Restart the browsers for them to see it. A running norikae-splice uses a renewed CA by itself.');
  });

cli.command('untrust', 'Remove the local CA\'s root from the system store and the browsers\' NSS databases')
  .option('--no-system', 'Leave the system store alone (no sudo): only the browsers\' NSS databases')
  .action(async (options: CliOptions & { system: boolean }) => {
    const [{ dataDir, rootFile }, { runSteps, untrustSteps }] = await Promise.all([import('../lib/local-ca.js'), import('../lib/trust-store.js')]);
    const dir = dataDir();
    if (!existsSync(rootFile(dir))) fail(`there is no local CA in ${dir}: nothing to remove`);
    const done = runSteps(untrustSteps(rootFile(dir), { system: options.system }), (line) => void process.stdout.write(`${line}\n`));
    process.stdout.write(`The CA itself stays in ${dir}; delete that folder to forget it.\n`);
    if (!done) process.exit(1);
  });

cli.command('dashboard', 'Open the dashboard of the running norikae-splice in your browser ($BROWSER, else the system\'s)')
  .option('--listen <address>', LISTEN_CLIENT)
  .action(async (options: CliOptions) => {
    const client = await controlClient(options);
    const { apiKeyFile, configId, readApiKey } = await import('../lib/api-access.js');
    await client.services(); // says clearly when none runs
    const config = readConfig(options, true);
    const key = readApiKey(apiKeyFile(stateDir(), config.file));
    if (key === undefined) fail(`cannot read the API key of the running norikae-splice in ${stateDir()}`);
    const url = `${serviceUrl(config.dashboardHost!, client.port)}/`;
    // The key goes in the URL's fragment (never sent in a request or a Referer), and the URL in a
    // file only we can read: a command line (the opener's) is readable by every user.
    const file = join(stateDir(), `open-dashboard-${configId(config.file)}.html`);
    const target = `${url}#key=${key}`.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
    writeFileSync(file, `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">`
      + `<meta http-equiv="refresh" content="0; url=${target}"><title>norikae-splice</title>\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    process.stdout.write(`opening ${url}\n`);
    if (!await openInBrowser(file)) process.stdout.write(`no browser could be started; open ${file} in yours\n`);
  });

cli.command('service <action>', 'Startup service: install | uninstall | status (systemd socket units on Linux, launchd on macOS)')
  .option('--listen <address>', 'Listen here instead of the config\'s `listen` (repeatable; passed on to the service)')
  .option('--system', 'A system-level unit (ports below 1024 without root for norikae-splice; needs sudo)')
  .option('--dry-run', 'Print the files and commands; change nothing')
  .option('--unit-dir <dir>', 'Write the units here instead, and enable nothing (for tests)')
  .action(async (action: string, options: CliOptions & { system?: boolean; dryRun?: boolean; unitDir?: string }) => {
    const { runServiceCommand } = await import('../lib/service-install.js');
    if (!['install', 'uninstall', 'status'].includes(action)) fail(`service ${action}: expected install, uninstall or status`);
    const code = runServiceCommand({
      action: action as ServiceAction,
      config: readConfig(options),
      listenArgs: listenOption(options),
      system: options.system === true,
      dryRun: options.dryRun === true,
      unitDir: options.unitDir === undefined ? undefined : resolve(String(options.unitDir)),
      node: process.execPath,
      bin: fileURLToPath(import.meta.url),
      print: (line) => process.stdout.write(`${line}\n`),
    });
    process.exitCode = code;
  });

cli.command('attach <name>', 'Connect your terminal to a terminal = true service (detach: Ctrl-b d; it keeps running)')
  .action(async (name: string, options: CliOptions) => {
    const { TerminalHost, terminalSocket } = await import('../lib/terminal.js');
    const config = readConfig(options, true);
    const service = config.services.find((candidate) => candidate.name === name);
    if (service === undefined) fail(`no service named "${name}" in ${config.file}`);
    if (!service.terminal) fail(`${name} does not run on a terminal: set \`terminal = true\` in [service.${name}] (then restart it) to attach to it`);
    log.info(`attaching to ${name}; detach with Ctrl-b d, and ${name} keeps running`);
    process.exitCode = new TerminalHost(terminalSocket(stateDir(), config.file)).attach(name);
  });

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
  return loadConfig(findConfigFile(options.config), { listen: listenOption(options), https: addressOption(options.https, '--https'), checkAddresses: !forRunning });
}

/** The --listen addresses given, if any; a malformed one ends the command with a clear line. */
function listenOption(options: CliOptions): ListenAddress[] | undefined {
  return addressOption(options.listen, '--listen');
}

/** The addresses given to `flag`, if any; a malformed one ends the command with a clear line. */
function addressOption(option: CliOptions['listen'], flag: string): ListenAddress[] | undefined {
  if (option === undefined) return undefined;
  const values = Array.isArray(option) ? option : [option];
  return values.map((value): ListenAddress => {
    const address = parseListenAddress(value);
    if (typeof address === 'string') fail(`${flag} ${value}: ${address}`);
    return address;
  });
}

/**
 * The names of the config (services and dashboard), which a CA made now must cover; none when
 * there is no config file and none was named (a CA for `localhost` alone).
 */
function configuredNames(options: CliOptions): string[] {
  let config: Config;
  try {
    config = readConfig(options, true);
  } catch (err) {
    if (err instanceof ConfigError && err.file === undefined && options.config === undefined) return [];
    throw err;
  }
  const names = config.services.flatMap((service) => service.hosts);
  return config.dashboardHost === undefined ? names : [...names, config.dashboardHost];
}

/** A client of the norikae running this config: where it says it listens, unless --listen says where to look. */
async function controlClient(options: CliOptions): Promise<ControlClient> {
  const [{ apiKeyFile, readApiKey }, { ControlClient }, { launchRecordFile }, { runningInstance }] = await Promise.all([
    import('../lib/api-access.js'), import('../lib/control-client.js'), import('../lib/launch-record.js'), import('../lib/running-instance.js'),
  ]);
  const config = readConfig(options, true);
  const running = options.listen === undefined ? runningInstance(launchRecordFile(stateDir(), config.file)) : undefined;
  return new ControlClient(config, running?.listening[0], readApiKey(apiKeyFile(stateDir(), config.file)));
}

/** Opens `file` with $BROWSER or the system's opener; false when it could not be started. */
function openInBrowser(file: string): Promise<boolean> {
  const [command, ...args] = process.env.BROWSER
    ? [process.env.BROWSER]
    : process.platform === 'darwin' ? ['open'] : process.platform === 'win32' ? ['cmd', '/c', 'start', '""'] : ['xdg-open'];
  return new Promise((resolve) => {
    const child = spawn(command!, [...args, file], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
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
