// `norikae-splice doctor`: what stands between this machine and a working setup, each with the
// line that fixes it. Every check reads what is there (the config, /proc, the resolver, a bind
// that is released at once) and changes nothing. Its report is a stable shape for scripts:
// `{ ok, checks: [{ name, ok, message, fix? }] }`, one entry per thing checked (a name may repeat:
// one `listen` entry per address).

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { formatAddress, type ListenAddress } from './address.js';
import { stateDir, type Config } from './config.js';
import { findConfigFile, loadConfig } from './config-file.js';
import { configWarnings, formatWarning } from './config-warnings.js';
import { ControlClient } from './control-client.js';
import { ConfigError, shellWord } from './errors.js';
import { isLoopbackAddress, resolutionFix, resolveNames, type Lookup } from './host-resolution.js';
import { exactHostNames } from './hosts-file.js';
import { launchRecordFile, liveLaunches } from './launch-record.js';
import { dataDir, loadCa, permits, rootFile } from './local-ca.js';
import { findPortOwner, type PortOwner } from './port-owner.js';
import { groupMembers, processGroupOf } from './process-group.js';
import { runningInstance, type RunningInstance } from './running-instance.js';
import { trustedIn } from './trust-store.js';

export interface DoctorCheck {
  /** Which check: `config`, `running`, `listen`, `resolve`, `commands`, `ports`, `launch-record`, `https`. */
  name: string;
  ok: boolean;
  /** What was found, in one line. */
  message: string;
  /** What to do about it, in one line; only when `ok` is false. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  /** --config; default: where the other commands look. */
  config?: string | undefined;
  /** --listen: check these addresses instead of the config's. */
  listen?: ListenAddress[] | undefined;
  /** How host names are resolved (default: dns.lookup, as Node programs and getaddrinfo do). */
  lookup?: Lookup;
  /** net.ipv4.ip_unprivileged_port_start; default: read from /proc (undefined off Linux). */
  unprivilegedPortStart?: number | undefined;
  /** Where launch records are; default: $XDG_STATE_HOME/norikae. */
  stateDir?: string;
}

/** What every check is given: the config, and the norikae running it, if one does. */
export interface DoctorContext {
  config: Config;
  running: RunningInstance | undefined;
  recordFile: string;
  lookup: Lookup | undefined;
  unprivilegedPortStart: number | undefined;
}

type Check = (context: DoctorContext) => DoctorCheck[] | Promise<DoctorCheck[]>;

/**
 * The checks after the config's own, in the order they are shown. A new one is a function of the
 * context returning its entries.
 */
export const DOCTOR_CHECKS: Check[] = [checkRunning, checkListeners, checkResolution, checkCommands, checkPorts, checkLaunchRecord, checkLocalCa];

/** Runs every check; a check that throws (a bug) is reported as failed, and the others still run. */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  let config: Config;
  try {
    config = loadConfig(findConfigFile(options.config), { listen: options.listen });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const fix = err.file === undefined || err.message.includes('cannot read the config file')
      ? 'create one with: norikae-splice init'
      : `edit ${err.file}${err.line === undefined ? '' : ` at line ${err.line}`} (norikae-splice check shows the line)`;
    return report([{ name: 'config', ok: false, message: err.message, fix }]);
  }
  const recordFile = launchRecordFile(options.stateDir ?? stateDir(), config.file);
  const context: DoctorContext = {
    config,
    running: runningInstance(recordFile),
    recordFile,
    lookup: options.lookup,
    unprivilegedPortStart: 'unprivilegedPortStart' in options ? options.unprivilegedPortStart : readUnprivilegedPortStart(),
  };
  const services = config.services.length;
  const checks: DoctorCheck[] = [{ name: 'config', ok: true, message: `${config.file} is valid (${services} service${services === 1 ? '' : 's'})` }];
  for (const check of DOCTOR_CHECKS) {
    try {
      checks.push(...await check(context));
    } catch (err) {
      checks.push({ name: check.name, ok: false, message: `could not check: ${err instanceof Error ? err.message : String(err)}`, fix: 'report this as a bug of norikae-splice' });
    }
  }
  return report(checks);
}

/**
 * The local CA behind HTTPS: made, able to sign every configured name, and trusted where browsers
 * look. Without `https` listeners it is only advice (TLS on the plain port still uses it), so it
 * fails only when the config asks for HTTPS.
 */
async function checkLocalCa({ config }: DoctorContext): Promise<DoctorCheck[]> {
  const required = config.https.length > 0;
  const dir = dataDir();
  const ca = await loadCa(dir).catch((err: unknown) => err as Error);
  if (ca instanceof Error) return [{ name: 'https', ok: false, message: ca.message, fix: 'norikae-splice trust --renew' }];
  if (ca === undefined) {
    return [advice(required, `no local CA yet in ${dir} (it is made on the first HTTPS connection)`, 'norikae-splice trust (makes it, and trusts it)')];
  }
  const names = config.services.flatMap((service) => service.tls === 'passthrough' ? [] : service.hosts.map((host) => host.replace(/^\*\./, 'x.')));
  const outside = names.filter((name) => !permits(ca, name));
  if (outside.length > 0) {
    return [{ name: 'https', ok: false, message: `the local CA may not sign for ${outside.join(', ')}`, fix: 'norikae-splice trust --renew (a CA that covers them, trusted again)' }];
  }
  const { places, notRebuilt } = trustedIn(ca.rootPem);
  if (notRebuilt !== undefined) {
    return [advice(required, `${notRebuilt}${places.length > 0 ? ` (it is trusted in ${places.join(', ')})` : ''}`, 'sudo update-ca-certificates')];
  }
  if (places.length === 0) {
    return [advice(required, `the local CA (${rootFile(dir)}) is trusted nowhere this check can see: browsers will warn`, 'norikae-splice trust')];
  }
  return [{ name: 'https', ok: true, message: `the local CA is trusted in ${places.join(', ')}` }];
}

/** A finding that fails the check only when `required`; otherwise its fix is said as advice. */
function advice(required: boolean, message: string, fix: string): DoctorCheck {
  return required ? { name: 'https', ok: false, message, fix } : { name: 'https', ok: true, message: `${message}; for HTTPS: ${fix}` };
}

/** One line a check: ✓ or ✗, its name, what was found, and the fix. */
export function formatCheck(check: DoctorCheck): string {
  return `${check.ok ? '✓' : '✗'} ${check.name}: ${check.message}${check.fix === undefined ? '' : ` — fix: ${check.fix}`}`;
}

function report(checks: DoctorCheck[]): DoctorReport {
  return { ok: checks.every((check) => check.ok), checks };
}

/** How long the running norikae has to answer its API. */
const ANSWER_TIMEOUT_MS = 3000;

/** Whether norikae runs this config, and answers when it does. */
async function checkRunning({ config, running }: DoctorContext): Promise<DoctorCheck[]> {
  if (running === undefined) {
    return [{ name: 'running', ok: true, message: `no norikae-splice runs this config; start it with: norikae-splice --config ${shellWord(config.file)}` }];
  }
  const where = running.listening[0];
  const at = where === undefined ? '' : ` on ${formatAddress(where)}`;
  if (config.dashboardHost === undefined || where === undefined) return [{ name: 'running', ok: true, message: `norikae-splice runs this config (pid ${running.pid})${at}` }];
  let timer: NodeJS.Timeout | undefined;
  try {
    const services = await Promise.race([
      new ControlClient(config, where).services(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`)), ANSWER_TIMEOUT_MS);
      }),
    ]);
    const up = services.filter((service) => service.pid !== null && service.pid !== undefined).length;
    return [{ name: 'running', ok: true, message: `norikae-splice runs this config (pid ${running.pid})${at}, ${up} of ${services.length} services up` }];
  } catch (err) {
    return [{
      name: 'running', ok: false, message: `norikae-splice (pid ${running.pid}) runs this config but its API does not answer${at}: ${(err as Error).message}`,
      fix: `restart it: kill ${running.pid}, then norikae-splice --config ${shellWord(config.file)}`,
    }];
  } finally {
    clearTimeout(timer);
  }
}

/** Every listen address can be bound (or is bound by the norikae that runs this config). */
async function checkListeners({ config, running, unprivilegedPortStart }: DoctorContext): Promise<DoctorCheck[]> {
  const addresses = [
    ...config.listen.map((address) => ({ address, service: undefined as string | undefined })),
    ...config.services.flatMap((service) => service.listen.map((address) => ({ address, service: service.name as string | undefined }))),
  ];
  const checks: DoctorCheck[] = [];
  for (const { address, service } of addresses) {
    const what = service === undefined ? formatAddress(address) : `${formatAddress(address)} (the \`listen\` of ${service})`;
    const owner = address.port === 0 ? undefined : findPortOwner(address.port);
    if (owner !== undefined && running !== undefined && owner.pid === running.pid) {
      checks.push({ name: 'listen', ok: true, message: `${what}: bound by the norikae-splice that runs this config` });
      continue;
    }
    if (owner !== undefined && isSystemd(owner)) {
      // The startup service's socket unit: systemd holds the port and hands it to norikae-splice.
      checks.push({ name: 'listen', ok: true, message: `${what}: held by systemd for the startup service (socket activation)` });
      continue;
    }
    const error = await tryBind(address);
    if (error === undefined) {
      checks.push({ name: 'listen', ok: true, message: `${what} can be bound` });
    } else if (error === 'EACCES') {
      checks.push({ name: 'listen', ok: false, message: `${what}: permission denied (ports below ${unprivilegedPortStart ?? 1024} need privileges)`, fix: privilegedPortFix(address.port) });
    } else if (error === 'EADDRINUSE') {
      checks.push({ name: 'listen', ok: false, message: `${what} is in use by ${describeOwner(owner)}`, fix: `stop that process, or choose another port for \`listen\` in ${config.file}` });
    } else if (error === 'EADDRNOTAVAIL') {
      checks.push({ name: 'listen', ok: false, message: `${what}: that address is not on this machine`, fix: `listen on 127.0.0.1 or [::1] in ${config.file}` });
    } else {
      checks.push({ name: 'listen', ok: false, message: `${what} cannot be bound: ${error}`, fix: `choose another address for \`listen\` in ${config.file}` });
    }
  }
  return checks;
}

/** systemd itself (the system's pid 1, or a user's `systemd --user`): what holds a socket unit's port. */
export function isSystemd(owner: PortOwner): boolean {
  return owner.pid === 1 || /(^|\/)systemd( |$)/.test(owner.command);
}

/** The fix for a port below the unprivileged start: the sysctl (now, and at every boot), setcap, or the startup service. */
export function privilegedPortFix(port: number): string {
  const start = Math.min(port, 80);
  return `allow it once with \`sudo sysctl -w net.ipv4.ip_unprivileged_port_start=${start}\``
    + ` (and at every boot: \`echo net.ipv4.ip_unprivileged_port_start=${start} | sudo tee /etc/sysctl.d/50-unprivileged-ports.conf\`),`
    + ' or let the startup service bind it (docs/setup.md), or listen on 8080';
}

/** net.ipv4.ip_unprivileged_port_start: the lowest port anyone may bind (Linux ≥ 4.11). */
export function readUnprivilegedPortStart(): number | undefined {
  try {
    const value = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'latin1').trim());
    return Number.isInteger(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `address` and lets it go at once; the error code when it cannot be bound. */
function tryBind(address: ListenAddress): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: address.host, port: address.port, ipv6Only: address.host.includes(':'), exclusive: true }, () => {
      server.close(() => resolve(undefined));
    });
  });
}

function describeOwner(owner: PortOwner | undefined): string {
  return owner === undefined ? 'another process (not one of yours, or not on Linux: it cannot be named)' : `pid ${owner.pid} (${owner.command.slice(0, 120)})`;
}

/** Every exact name of the config resolves, to loopback only, for programs that are not browsers. */
async function checkResolution({ config, lookup }: DoctorContext): Promise<DoctorCheck[]> {
  const names = exactHostNames(config);
  const results = await resolveNames(names, lookup);
  const unresolved = results.filter((result) => result.error !== undefined);
  const checks: DoctorCheck[] = [];
  if (unresolved.length > 0) {
    const shown = unresolved.slice(0, 3).map((result) => `${result.name} (${result.error})`).join(', ');
    const more = unresolved.length > 3 ? ` and ${unresolved.length - 3} more` : '';
    checks.push({
      name: 'resolve', ok: false,
      message: `${shown}${more} ${unresolved.length === 1 ? 'does' : 'do'} not resolve for programs that are not browsers (Node, Python, Safari: whatever asks the system's resolver)`,
      fix: resolutionFix(config.file),
    });
  }
  for (const result of results) {
    if (result.addresses === undefined || result.addresses.every(isLoopbackAddress)) continue;
    checks.push({
      name: 'resolve', ok: false, message: `${result.name} resolves to ${result.addresses.join(', ')}, not to this machine`,
      fix: `remove what says so (an /etc/hosts line?), then: sudo env "PATH=$PATH" norikae-splice hosts sync --config ${shellWord(config.file)}`,
    });
  }
  if (checks.length > 0) return checks;
  const count = `${names.length} host name${names.length === 1 ? '' : 's'}`;
  return [{ name: 'resolve', ok: true, message: names.length === 0 ? 'no host names to resolve' : `${count} of the config resolve to this machine for every program` }];
}

/** Every launched command has its folder and its program (config-warnings.ts). */
function checkCommands({ config }: DoctorContext): DoctorCheck[] {
  const warnings = configWarnings(config);
  if (warnings.length === 0) {
    const launched = config.services.filter((service) => service.command !== undefined).length;
    return [{ name: 'commands', ok: true, message: `the ${launched} command${launched === 1 ? '' : 's'} have their folder, and their program is on PATH` }];
  }
  return warnings.map((warning) => {
    const where = warning.line === undefined ? config.file : `${config.file}:${warning.line}`;
    return {
      name: 'commands', ok: false, message: formatWarning(config.file, warning),
      fix: warning.key === 'cwd' ? `create that folder, or fix \`cwd\` at ${where}` : `install that program, or fix \`command\` at ${where}`,
    };
  });
}

/**
 * No other process holds a launched service's port: norikae would send the service's requests to
 * it, and never run the command. (A service without a command is meant to be started by you.)
 */
function checkPorts({ config, running, recordFile }: DoctorContext): DoctorCheck[] {
  const ours = new Set(running === undefined ? [] : liveLaunches(recordFile).map((entry) => entry.pgid));
  const checks: DoctorCheck[] = [];
  let free = 0;
  for (const service of config.services) {
    if (service.port === undefined || service.command === undefined) continue;
    const owner = findPortOwner(service.port);
    if (owner === undefined) {
      free++;
      continue;
    }
    const group = processGroupOf(owner.pid);
    if (group !== undefined && ours.has(group)) {
      checks.push({ name: 'ports', ok: true, message: `port ${service.port}: ${service.name}, launched by norikae-splice` });
      continue;
    }
    checks.push({
      name: 'ports', ok: false,
      message: `port ${service.port} of ${service.name} is held by ${describeOwner(owner)}, which norikae-splice did not start: requests for ${service.name} go to it, and its command is never run`,
      fix: `stop that process (kill ${owner.pid}) if it is not ${service.name}'s dev server, or give ${service.name} another port`,
    });
  }
  if (checks.length === 0) checks.push({ name: 'ports', ok: true, message: `no other process holds the port of a launched service (${free} fixed port${free === 1 ? '' : 's'} checked)` });
  return checks;
}

/** A record of launches left by a norikae that was killed, with its services still running. */
function checkLaunchRecord({ config, running, recordFile }: DoctorContext): DoctorCheck[] {
  let exists = true;
  try {
    readFileSync(recordFile);
  } catch {
    exists = false;
  }
  if (!exists) return [{ name: 'launch-record', ok: true, message: 'no launch record: nothing launched with this config is left running' }];
  if (running !== undefined) return [{ name: 'launch-record', ok: true, message: `${recordFile} is kept by the running norikae-splice (pid ${running.pid})` }];
  const left = liveLaunches(recordFile).map((entry) => ({ ...entry, pids: groupMembers(entry.pgid) })).filter((entry) => entry.pids.length > 0);
  if (left.length === 0) return [{ name: 'launch-record', ok: true, message: `${recordFile} is a past run's; nothing it launched still runs` }];
  const named = left.map((entry) => `${entry.service} (pids ${entry.pids.join(', ')})`).join(', ');
  return [{
    name: 'launch-record', ok: false,
    message: `a norikae-splice that was killed left ${left.length} service${left.length === 1 ? '' : 's'} running: ${named}`,
    fix: `start norikae-splice --config ${shellWord(config.file)} (it stops them first), or stop them: ${left.map((entry) => `kill -TERM -${entry.pgid}`).join('; ')}`,
  }];
}
