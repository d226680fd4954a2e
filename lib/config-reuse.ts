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
  /** The context it was checked in: the read's own object (see begin()), compared by identity. */
  context: ServiceContext;
  service: ServiceConfig;
  /** The last read that found or checked it. */
  read: number;
}

/**
 * The services of the last read, by name; one instance lives as long as the app that reloads.
 * Kept in one Map updated in place: a reload of 1,000 services makes no new one.
 */
export class ServiceReuse {
  private readonly checked = new Map<string, Checked>();
  private context: ServiceContext | undefined;
  /** Reads begun, and the services the one under way found or kept. */
  private reads = 0;
  private seen = 0;

  /** A read starts, in `context`: the last read's context object stays when it is the same, so entries compare it by identity. */
  begin(context: ServiceContext): void {
    if (this.context === undefined || !sameContext(this.context, context)) this.context = context;
    this.reads++;
    this.seen = 0;
  }

  /** The service the last read made of the same table in the same context, if any. */
  find(name: string, table: unknown): ServiceConfig | undefined {
    const checked = this.checked.get(name);
    if (checked === undefined || checked.context !== this.context || !sameTomlValue(checked.table, table)) return undefined;
    checked.read = this.reads;
    this.seen++;
    return checked.service;
  }

  /** Keeps a service just checked for the next read (not one with a terminal: tmux is looked for every time). */
  keep(name: string, table: unknown, service: ServiceConfig): void {
    if (service.terminal) {
      this.checked.delete(name);
      return;
    }
    this.checked.set(name, { table, context: this.context!, service, read: this.reads });
    this.seen++;
  }

  /** Every service of the read was found or checked: services no longer configured are forgotten. */
  end(): void {
    if (this.seen === this.checked.size) return;
    for (const [name, checked] of this.checked) if (checked.read !== this.reads) this.checked.delete(name);
  }
}

function sameContext(a: ServiceContext, b: ServiceContext): boolean {
  return a.file === b.file && a.home === b.home && a.idleTimeout === b.idleTimeout && a.stopTimeout === b.stopTimeout
    && a.idleCooldown === b.idleCooldown && a.terminal === b.terminal;
}
