// What a person reads about a config: its routing table (at start and from `check`), and what an
// edit changed (in the reload line).

import { formatAddress, serviceUrl } from './address.js';
import { sameConfig, type Config } from './config.js';

/** One line per service: where it is reached (on the first HTTP listener's `port`) and where it goes. */
export function routingTable(config: Config, port: number | undefined): string[] {
  const lines = [`config ${config.file}`];
  const width = Math.max(0, ...config.services.map((service) => service.name.length));
  for (const service of config.services) {
    const upstream = service.port === undefined ? 'a free port chosen at launch' : `${service.upstream ?? '127.0.0.1'}:${service.port}`;
    const from = [
      ...service.hosts.map((host) => serviceUrl(host, port)),
      ...service.listen.map((address) => `tcp ${formatAddress(address)}`),
    ];
    lines.push(`  ${service.name.padEnd(width)}  ${from.join(', ')} → ${upstream}${service.command ? `  (command: ${service.command})` : ''}`);
  }
  if (config.services.length === 0) lines.push('  (no services configured)');
  return lines;
}

/** `added a, b; removed c; changed d` between two configs, or '' when no service changed. */
export function describeChanges(before: Config, after: Config): string {
  let added: string[] = [];
  let removed: string[] = [];
  let changed: string[] = [];
  const aligned = before.services.length === after.services.length && after.services.every((service, i) => service.name === before.services[i]!.name);
  if (aligned) {
    // The usual edit keeps every service where it was: compared pair by pair, with no Maps of
    // 1,000 services made for it (a reused service is the same object: sameConfig stops at once).
    for (let i = 0; i < after.services.length; i++) {
      if (!sameConfig(before.services[i], after.services[i])) changed.push(after.services[i]!.name);
    }
  } else {
    const old = new Map(before.services.map((service) => [service.name, service]));
    const now = new Map(after.services.map((service) => [service.name, service]));
    added = [...now.keys()].filter((name) => !old.has(name));
    removed = [...old.keys()].filter((name) => !now.has(name));
    changed = [...now.keys()].filter((name) => old.has(name) && !sameConfig(old.get(name), now.get(name)));
  }
  return [
    added.length ? `added ${added.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
    changed.length ? `changed ${changed.join(', ')}` : '',
  ].filter(Boolean).join('; ');
}
