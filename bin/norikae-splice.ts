#!/usr/bin/env node
// The command line: find and load the config, then either check it (`check`) or run the proxy
// until SIGINT/SIGTERM. Every error a user can cause ends in one clear line and a non-zero exit.

import { readFileSync } from 'node:fs';
import { cac } from 'cac';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { findConfigFile, formatAddress, loadConfig, parseListenAddress, stateDir, type Config, type ListenAddress } from '../lib/config.js';
import { ConfigError, NorikaeError } from '../lib/errors.js';
import { streamLog } from '../lib/log.js';
import { LaunchRecord } from '../lib/launch-record.js';
import { SpliceServer } from '../lib/server.js';
import { ServiceSupervisor } from '../lib/supervisor.js';

interface CliOptions {
  config?: string;
  listen?: string | number | (string | number)[];
  serviceOutput?: boolean;
}

const log = streamLog();
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const cli = cac('norikae-splice');
cli.option('-c, --config <file>', 'Config file (default: ./norikae.toml, then $XDG_CONFIG_HOME/norikae/config.toml)');
cli.option('--listen <address>', 'Listen on host:port or a port instead of the config\'s `listen` (repeatable)');

cli.command('', 'Run the proxy')
  .option('--service-output', 'Also print the services\' own output, prefixed with their name')
  .action(async (options: CliOptions) => {
    const config = readConfig(options);
    // One record per config file, so two norikae instances never stop each other's services.
    const recordName = `launched-${createHash('sha256').update(config.file).digest('hex').slice(0, 12)}.json`;
    const supervisor = new ServiceSupervisor(config, {
      log,
      echoOutput: options.serviceOutput === true,
      record: new LaunchRecord(join(stateDir(), recordName)),
    });
    await supervisor.cleanOrphans();
    const server = new SpliceServer(config, { log, connector: supervisor });
    const bound = await server.listen();
    printRoutingTable(config, bound[0]?.port, (line) => log.info(line));
    for (const address of bound) log.info(`listening on http://${formatAddress(address)}`);
    for (const service of config.services) {
      for (const address of server.serviceAddresses(service.name)) log.info(`${service.name} listening on tcp ${formatAddress(address)}`);
    }
    if (bound.some((address) => !isLoopback(address.host))) {
      log.warn('listening beyond loopback: every machine that can reach this address can start the configured commands');
    }
    exitOnSignals(async () => {
      await server.close();
      await supervisor.stopAll();
    });
  });

cli.command('check', 'Validate the config, print the routing table, and exit').action((options: CliOptions) => {
  const config = readConfig(options);
  printRoutingTable(config, config.listen[0]?.port, (line) => process.stdout.write(`${line}\n`));
  process.stdout.write('config is valid\n');
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

/** Loads the config the options point to, with `--listen` applied. */
function readConfig(options: CliOptions): Config {
  const config = loadConfig(findConfigFile(options.config));
  if (options.listen !== undefined) {
    const values = Array.isArray(options.listen) ? options.listen : [options.listen];
    config.listen = values.map((value): ListenAddress => {
      const address = parseListenAddress(value);
      if (typeof address === 'string') fail(`--listen ${value}: ${address}`);
      return address;
    });
  }
  return config;
}

/** One line per service: where it is reached (on the first HTTP listener's `port`) and where it goes. */
function printRoutingTable(config: Config, port: number | undefined, print: (line: string) => void): void {
  print(`config ${config.file}`);
  const suffix = port === undefined || port === 80 ? '' : `:${port}`;
  const width = Math.max(0, ...config.services.map((service) => service.name.length));
  for (const service of config.services) {
    const upstream = service.port === undefined ? 'a free port chosen at launch' : `${service.upstream ?? '127.0.0.1'}:${service.port}`;
    const from = [
      ...service.hosts.map((host) => `http://${host}${suffix}`),
      ...service.listen.map((address) => `tcp ${formatAddress(address)}`),
    ];
    print(`  ${service.name.padEnd(width)}  ${from.join(', ')} → ${upstream}${service.command ? `  (command: ${service.command})` : ''}`);
  }
  if (config.services.length === 0) print('  (no services configured)');
}

/** First SIGINT/SIGTERM closes gracefully; a second one exits at once. */
function exitOnSignals(close: () => Promise<void>): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) process.exit(130);
    closing = true;
    log.info(`${signal}: closing`);
    close().then(() => process.exit(0), (err) => {
      log.error(String(err));
      process.exit(1);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
    fail(unused ? `unknown command "${unused[1]}"; run norikae-splice --help for the commands` : `${err.message.replace(/`/g, '"')}; run norikae-splice --help for the options`);
  }
  throw err;
}

function fail(message: string): never {
  log.error(message);
  process.exit(1);
}

function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host === 'localhost';
}
