// The state file of launched process groups. norikae may be killed with SIGKILL and get no
// chance to stop what it launched; the next start reads this file and stops those groups. A
// process is only touched if it still carries its launch's NORIKAE_LAUNCH_ID in its
// environment, so a PID that the system gave to something else since is left alone. The file
// also names the norikae that owns it and where it listens, for running-instance.ts.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ListenAddress } from './config.js';
import createDebug from 'debug';
import { LAUNCH_ID_VARIABLE } from './launch.js';
import { NorikaeError } from './errors.js';
import { environValue, groupMembers, processStartTime, stopGroup } from './process-group.js';
import { runningInstance } from './running-instance.js';

const debug = createDebug('norikae:launch-record');

export interface LaunchEntry {
  launchId: string;
  /** Process group id (the shell's pid). */
  pgid: number;
  service: string;
}

/** The record of the norikae running `configFile`: one per config file, so two configs never stop each other's services. */
export function launchRecordFile(stateDir: string, configFile: string): string {
  return join(stateDir, `launched-${createHash('sha256').update(configFile).digest('hex').slice(0, 12)}.json`);
}

export class LaunchRecord {
  private entries: LaunchEntry[] = [];
  private listening: ListenAddress[] = [];
  /** This process's start time, read once: with its pid it names the record's owner (see running-instance.ts). */
  private readonly started = processStartTime(process.pid);

  constructor(readonly file: string) {}

  /** Records where this norikae listens (port 0 resolved), for the CLI. */
  setListening(addresses: ListenAddress[]): void {
    this.listening = addresses;
    this.save();
  }

  /**
   * Stops the groups a previous run left behind and starts a fresh record; returns what it
   * stopped. Throws, touching nothing, while the norikae that wrote the record still runs: its
   * services are not orphans.
   */
  async cleanOrphans(
    stopTimeoutMs: (service: string) => number,
    onStopping: (orphan: { service: string; pids: number[] }) => void = () => {},
  ): Promise<{ service: string; pids: number[] }[]> {
    const owner = runningInstance(this.file);
    if (owner !== undefined && owner.pid !== process.pid) {
      throw new NorikaeError('NORIKAE_ERR_RUNNING', `norikae-splice is already running with this config (pid ${owner.pid}); `
        + 'stop it first, or use `norikae-splice status` to see its services');
    }
    const entries = readEntries(this.file);
    const stopped: { service: string; pids: number[] }[] = [];
    // All at once: each group gets its own stop_timeout, and the start waits for the slowest only.
    await Promise.all(entries.map(async (entry) => {
      const pids = groupMembers(entry.pgid).filter((pid) => environValue(pid, LAUNCH_ID_VARIABLE) === entry.launchId);
      if (pids.length === 0) return;
      debug('orphaned group %d of %s: %o', entry.pgid, entry.service, pids);
      const orphan = { service: entry.service, pids };
      stopped.push(orphan);
      onStopping(orphan);
      await stopGroup(entry.pgid, stopTimeoutMs(entry.service));
    }));
    this.entries = [];
    this.save();
    return stopped;
  }

  /** The process groups launched and not yet known to be gone. */
  groups(): number[] {
    return this.entries.map((entry) => entry.pgid);
  }

  add(entry: LaunchEntry): void {
    this.entries.push(entry);
    this.save();
  }

  remove(launchId: string): void {
    this.entries = this.entries.filter((entry) => entry.launchId !== launchId);
    this.save();
  }

  /** Written whole to a temporary file and renamed, so a crash never leaves half a file. */
  private save(): void {
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const temporary = `${this.file}.${process.pid}.tmp`;
      const record = { pid: process.pid, started: this.started, listening: this.listening, launched: this.entries };
      writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
      renameSync(temporary, this.file);
    } catch (err) {
      debug('cannot write %s: %s', this.file, (err as Error).message);
    }
  }
}

/** The launched groups a record names; none when it is missing or unreadable. */
function readEntries(file: string): LaunchEntry[] {
  let data: { launched?: unknown };
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
  } catch {
    return [];
  }
  return (Array.isArray(data.launched) ? data.launched as unknown[] : []).filter((entry): entry is LaunchEntry =>
    typeof (entry as LaunchEntry)?.launchId === 'string' && Number.isInteger((entry as LaunchEntry)?.pgid)
    && (entry as LaunchEntry).pgid > 1 && typeof (entry as LaunchEntry)?.service === 'string');
}
