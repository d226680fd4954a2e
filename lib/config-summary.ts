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
  // One Map and one pass (a reload compares 1,000 services; a reused one is the same object, so
  // sameConfig stops at once): what is left in `old` afterwards was removed.
  const old = new Map(before.services.map((service) => [service.name, service]));
  const added: string[] = [];
  const changed: string[] = [];
  for (const service of after.services) {
    const previous = old.get(service.name);
    if (previous === undefined) added.push(service.name);
    else if (!sameConfig(previous, service)) changed.push(service.name);
    old.delete(service.name);
  }
  const removed = [...old.keys()];
  return [
    added.length ? `added ${added.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
    changed.length ? `changed ${changed.join(', ')}` : '',
  ].filter(Boolean).join('; ');
}
