// The startup service's files, as text: systemd socket and service units (Linux) and a launchd
// property list (macOS). systemd holds the listening sockets and starts norikae-splice on the
// first connection; FileDescriptorName= names every socket of a unit alike, so each listener gets
// a socket unit of its own (`norikae-splice-http-8080.socket`), all naming one service. Writing
// them and running systemctl or launchctl is service-install.ts.

import { formatAddress, type ListenAddress } from './address.js';
import type { Config } from './config.js';
import { listenerFdName } from './socket-activation.js';

/** The service unit's name; the sockets are `norikae-splice-FDNAME.socket`. */
export const SERVICE_UNIT = 'norikae-splice.service';
/** The launchd job's label (and file name, with `.plist`). */
export const LAUNCHD_LABEL = 'org.norikae-splice';

/** What the files start: this node, this bin, on this config. */
export interface ServicePlan {
  config: Pick<Config, 'file' | 'listen' | 'services'>;
  /** Absolute paths of node and of norikae-splice's bin. */
  node: string;
  bin: string;
  /** `--listen` given at install: passed on to every start. */
  listenArgs: ListenAddress[] | undefined;
  /** A system-level unit (root binds the ports), run as this user; undefined: the user's own unit. */
  systemUser: string | undefined;
  /** The PATH the services' commands are found on (the installing shell's). */
  path: string;
}

/** One listener: its socket unit's file name and body. */
export interface UnitFile {
  name: string;
  text: string;
}

/** The socket units (one per listen address) and the service unit. */
export function systemdUnits(plan: ServicePlan): UnitFile[] {
  const listeners = [
    ...plan.config.listen.map((address) => ({ address, fdName: listenerFdName(address), what: 'HTTP' })),
    ...plan.config.services.flatMap((service) => service.listen.map((address) => ({
      address, fdName: listenerFdName(address, service.name), what: `the \`listen\` of service ${service.name}`,
    }))),
  ];
  const header = `# Written by \`norikae-splice service install\` for ${plan.config.file}.\n`
    + '# Edits of `listen` in that file need `norikae-splice service install` again.\n';
  const sockets = listeners.map(({ address, fdName, what }): UnitFile => ({
    name: `norikae-splice-${fdName}.socket`,
    text: `${header}[Unit]\nDescription=norikae-splice: ${what} on ${formatAddress(address)}\nPartOf=${SERVICE_UNIT}\n\n`
      + `[Socket]\nListenStream=${formatAddress(address)}\nFileDescriptorName=${fdName}\nService=${SERVICE_UNIT}\n`
      // norikae binds [::] as IPv6 only; so must systemd, or the IPv4 side is taken too.
      + `${address.host.includes(':') ? 'BindIPv6Only=ipv6-only\n' : ''}`
      + `\n[Install]\nWantedBy=sockets.target\n`,
  }));
  const exec = [plan.node, plan.bin, '--config', plan.config.file, ...(plan.listenArgs ?? []).flatMap((address) => ['--listen', formatAddress(address)])];
  const service = [
    `${header}[Unit]`,
    `Description=norikae-splice: dev servers of ${plan.config.file}, launched on demand`,
    `Requires=${sockets.map(({ name }) => name).join(' ')}`,
    `After=${sockets.map(({ name }) => name).join(' ')}`,
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec.map(execWord).join(' ')}`,
    `Sockets=${sockets.map(({ name }) => name).join(' ')}`,
    ...(plan.systemUser === undefined ? [] : [`User=${plan.systemUser}`]),
    'WorkingDirectory=~',
    `Environment=${unitQuote(`PATH=${plan.path}`.replaceAll('%', '%%'))}`,
    // SIGTERM to norikae alone: it stops its services' process groups itself, each in its stop_timeout.
    'KillMode=mixed',
    'TimeoutStopSec=60',
    'Restart=on-failure',
    'RestartSec=2',
    // stdout and stderr go to the journal: journalctl [--user] -u norikae-splice
    '',
  ].join('\n');
  return [...sockets, { name: SERVICE_UNIT, text: service }];
}

/** The launchd job: started at login (or boot, system-wide) and kept running; its output in `logFile`. */
export function launchdPlist(plan: ServicePlan, logFile: string): string {
  const args = [plan.node, plan.bin, '--config', plan.config.file, ...(plan.listenArgs ?? []).flatMap((address) => ['--listen', formatAddress(address)])];
  const string = (text: string): string => `<string>${xmlEscape(text)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    `<!-- Written by \`norikae-splice service install\` for ${xmlEscape(plan.config.file).replaceAll('--', '- -')}. -->`,
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${string(LAUNCHD_LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args.map((arg) => `    ${string(arg)}`),
    '  </array>',
    ...(plan.systemUser === undefined ? [] : [`  <key>UserName</key>${string(plan.systemUser)}`]),
    '  <key>EnvironmentVariables</key>',
    `  <dict><key>PATH</key>${string(plan.path)}</dict>`,
    '  <key>RunAtLoad</key><true/>',
    // Restarted when it fails, not after a clean exit (norikae-splice stop by a signal, say).
    '  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>',
    `  <key>StandardOutPath</key>${string(logFile)}`,
    `  <key>StandardErrorPath</key>${string(logFile)}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

/** One word of ExecStart=: quoted when it holds spaces or quotes; `%` and `$` escaped (systemd expands both). */
function execWord(word: string): string {
  const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /^[\w./+:@,=-]+$/.test(escaped) ? escaped : unitQuote(escaped);
}

/** A double-quoted unit-file value, with `\` and `"` escaped (specifiers are the caller's). */
function unitQuote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

function xmlEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}
