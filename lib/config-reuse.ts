// What a reload need not check again. A reload reads the whole file, but an edit changes a service
// or two: a service whose parsed table, top-level defaults and config file are the same as at the
// last read is the very ServiceConfig that read made, not checked and built again. Being the same
// object, it is also unchanged at once for the reload's comparisons (sameConfig, describeChanges).
// A service's checks of its own table are a function of those inputs alone, except tmux on PATH
// for `terminal = true`: such a service is checked every time. Checks across services (hosts
// claimed twice, address clashes, `requires`) always run. A table toml-reuse.ts kept from the
// last document is the very same object, found unchanged without a walk.

import type { ServiceConfig } from './config.js';
import { sameTomlValue, TomlReuse } from './toml-reuse.js';

/** What one read leaves for the next: its parsed text (toml-reuse.ts) and its services. */
export interface ConfigReuse {
  document: TomlReuse;
  services: ServiceReuse;
}

/** Nothing read yet: for an app, whose reloads read the same file again. */
export function configReuse(): ConfigReuse {
  return { document: new TomlReuse(), services: new ServiceReuse() };
}

/** What a service's checks depend on besides its own table. */
export interface ServiceContext {
  file: string;
  home: string;
  idleTimeout: number | undefined;
  stopTimeout: number;
  idleCooldown: number;
  terminal: boolean;
}

interface Checked {
  table: unknown;
  context: ServiceContext;
  service: ServiceConfig;
}

/** The services of the last read, by name; one instance lives as long as the app that reloads. */
export class ServiceReuse {
  private last = new Map<string, Checked>();
  private next = new Map<string, Checked>();

  /** A read starts: what it checks replaces the last read's services once it ends (see end()). */
  begin(): void {
    this.next = new Map();
  }

  /** The service the last read made of the same table in the same context, if any. */
  find(name: string, table: unknown, context: ServiceContext): ServiceConfig | undefined {
    const checked = this.last.get(name);
    if (checked === undefined || !sameContext(checked.context, context) || !sameTomlValue(checked.table, table)) return undefined;
    this.next.set(name, checked);
    return checked.service;
  }

  /** Keeps a service just checked for the next read. */
  keep(name: string, table: unknown, context: ServiceContext, service: ServiceConfig): void {
    if (service.terminal) return;
    this.next.set(name, { table, context, service });
  }

  /** Every service of the read was checked: services no longer configured are forgotten. */
  end(): void {
    this.last = this.next;
    this.next = new Map();
  }
}

function sameContext(a: ServiceContext, b: ServiceContext): boolean {
  return a.file === b.file && a.home === b.home && a.idleTimeout === b.idleTimeout && a.stopTimeout === b.stopTimeout
    && a.idleCooldown === b.idleCooldown && a.terminal === b.terminal;
}
