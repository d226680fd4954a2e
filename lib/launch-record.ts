// The state file of launched process groups. norikae may be killed with SIGKILL and get no
// chance to stop what it launched; the next start reads this file and stops those groups. A group
// is named by processes we know for good (pid and start time, in the boot that wrote the record):
// its leader, the shell we spawned, and the members it left if it exited first. While one of them
// still lives in the group, the group is ours (Linux hands out no pid still in use as a group id),
// so a pid or group id the system gave to something else since is left alone, whatever the
// process did to its environment. The file also names the norikae that owns it and where it
// listens, for running-instance.ts.

import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ListenAddress } from './address.js';
import { createDebug } from './packages.js';
import { AlreadyRunningError } from './errors.js';
import type { LaunchedProcess } from './launch.js';
import { bootId, groupMembers, isGroupMember, processStartTime, type ProcessId } from './process-group.js';
import { LaunchTree } from './process-tree.js';
import { runningInstance } from './running-instance.js';

const debug = createDebug('norikae:launch-record');

/** A launch as the record keeps it. */
export interface LaunchEntry {
  launchId: string;
  service: string;
  /** Process group id: the shell's pid, as it leads its group. */
  pgid: number;
  /** Processes known to be ours in the group: the shell, and the members left when it exited first. */
  processes: ProcessId[];
}

/** A group a previous norikae left running, as cleanOrphans stops it. */
export interface Orphan {
  service: string;
  /** Its live members when it was found. */
  pids: number[];
}

/**
 * The record of the norikae running `configFile`: one per config file, so two configs never stop
 * each other's services. Named by the file itself (its real path): the same file through a
 * symlink, or `a/../norikae.toml`, is the same config, and one norikae runs it.
 */
export function launchRecordFile(stateDir: string, configFile: string): string {
  return join(stateDir, `launched-${createHash('sha256').update(realConfigPath(configFile)).digest('hex').slice(0, 12)}.json`);
}

/** The real path of a config file (links resolved); the path as given when it cannot be resolved (it is missing). */
export function realConfigPath(configFile: string): string {
  try {
    return realpathSync(configFile);
  } catch {
    return configFile;
  }
}

export class LaunchRecord {
  private entries: LaunchEntry[] = [];
  private readonly launchIds = new Map<LaunchedProcess, string>();
  private listening: ListenAddress[] = [];
  /** This process's start time, read once: with its pid it names the record's owner (see running-instance.ts). */
  private readonly started = processStartTime(process.pid);
  /** The boot the start times count from: a record of another boot names no process of this one. */
  private readonly boot = bootId();
  /** The write under way, or the last one (see save). */
  private writing: Promise<void> = Promise.resolve();
  /** A write is queued and has not begun: a save now is that write. */
  private writeQueued = false;

  constructor(readonly file: string) {}

  /** Records where this norikae listens (port 0 resolved), for the CLI; resolves once it is on disk. */
  setListening(addresses: ListenAddress[]): Promise<void> {
    this.listening = addresses;
    return this.save();
  }

  /**
   * Stops the groups a previous run left behind and starts a fresh record; returns what it
   * stopped. Throws, touching nothing, while the norikae that wrote the record still runs: its
   * services are not orphans.
   */
  async cleanOrphans(stopTimeoutMs: (service: string) => number, onStopping: (orphan: Orphan) => void = () => {}): Promise<Orphan[]> {
    const owner = runningInstance(this.file);
    if (owner !== undefined && owner.pid !== process.pid) {
      throw new AlreadyRunningError(owner.pid);
    }
    const { boot, entries } = readRecord(this.file);
    // Without a boot to compare (a record of an older version, no /proc), nothing is known to be ours.
    const sameBoot = boot !== undefined && boot === this.boot;
    const stopped: Orphan[] = [];
    // All at once: each launch gets its own stop_timeout, and the start waits for the slowest only.
    await Promise.all((sameBoot ? entries : []).map(async (entry) => {
      // The group is ours while a known process is in it; a known process that left it (setsid)
      // is ours wherever it is, and so is whatever it started.
      const groupIsOurs = entry.processes.some((known) => isGroupMember(known, entry.pgid));
      const tree = new LaunchTree(groupIsOurs ? entry.pgid : undefined, entry.processes);
      tree.refresh();
      const pids = [...new Set([...(groupIsOurs ? groupMembers(entry.pgid) : []), ...tree.alive().map(({ pid }) => pid)])];
      if (pids.length === 0) return;
      debug('orphaned launch %d of %s: %o', entry.pgid, entry.service, pids);
      const orphan = { service: entry.service, pids };
      stopped.push(orphan);
      onStopping(orphan);
      await tree.stop(stopTimeoutMs(entry.service));
    }));
    this.entries = [];
    await this.save();
    return stopped;
  }

  /** The process groups launched and not yet known to be gone. */
  groups(): number[] {
    return this.entries.map((entry) => entry.pgid);
  }

  /**
   * Records a launch: its group and the shell that leads it, named by its start time. A shell that
   * exits before its group (`server &`) no longer names it: the members it left are recorded then.
   */
  add(launch: { launchId: string; service: string; process: Pick<LaunchedProcess, 'pid' | 'exited' | 'started'> }): void {
    // Read at the spawn, before the shell could be reaped: it may be gone by now (see LaunchedProcess).
    const { pid, started } = launch.process;
    const entry: LaunchEntry = { launchId: launch.launchId, service: launch.service, pgid: pid, processes: [] };
    if (started !== undefined) entry.processes.push({ pid, started });
    this.entries.push(entry);
    this.save();
    void launch.process.exited.then(() => {
      if (started === undefined || !this.entries.includes(entry)) return;
      const left = groupMembers(pid).flatMap((member) => {
        const memberStarted = processStartTime(member);
        // Forked by the shell, so started after it: anything else is not what we launched.
        return memberStarted !== undefined && Number(memberStarted) >= Number(started) ? [{ pid: member, started: memberStarted }] : [];
      });
      if (left.length === 0) return;
      debug('group %d of %s outlives its shell: %o', pid, launch.service, left);
      entry.processes.push(...left);
      this.save();
    });
  }

  /** Records processes of a launch seen since (those that left its group included), so the orphan clean-up finds them too. */
  addProcesses(launchId: string, ids: readonly ProcessId[]): void {
    const entry = this.entries.find((each) => each.launchId === launchId);
    if (entry === undefined) return;
    const known = new Set(entry.processes.map(({ pid, started }) => `${pid} ${started}`));
    const added = ids.filter(({ pid, started }) => !known.has(`${pid} ${started}`));
    if (added.length === 0) return;
    entry.processes.push(...added);
    this.save();
  }

  /** Records a launched process, and follows the processes it starts (as its walks see them) until `ended`. */
  launched(service: string, process: LaunchedProcess): void {
    const launchId = randomUUID();
    this.launchIds.set(process, launchId);
    this.add({ launchId, service, process });
    // The shell, then each process the walk once a second sees.
    this.addProcesses(launchId, process.tree.seen());
    process.onProcessesSeen = (ids) => this.addProcesses(launchId, ids);
  }

  /** A launched process is gone, or stopped: no longer anything to clean up after. */
  ended(process: LaunchedProcess): void {
    const launchId = this.launchIds.get(process);
    if (launchId === undefined) return;
    this.launchIds.delete(process);
    this.remove(launchId);
  }

  remove(launchId: string): void {
    this.entries = this.entries.filter((entry) => entry.launchId !== launchId);
    this.save();
  }

  /** Resolves once everything recorded so far is on disk (before an exit, say). */
  flushed(): Promise<void> {
    return this.writing;
  }

  /**
   * Writes the record, off the event loop: written on it, a launch's write and rename took up to
   * 100 ms each on a loaded machine, with every connection waiting. One write at a time, each of
   * the state when it begins, so the last state is the one left on disk; saves asked for while
   * one waits to begin are that one. Resolves once the state as of now is on disk.
   */
  private save(): Promise<void> {
    if (!this.writeQueued) {
      this.writeQueued = true;
      this.writing = this.writing.then(() => this.write());
    }
    return this.writing;
  }

  /** Written whole to a temporary file and renamed, so a crash never leaves half a file. */
  private async write(): Promise<void> {
    this.writeQueued = false;
    const record = { pid: process.pid, started: this.started, boot: this.boot, listening: this.listening, launched: this.entries };
    const text = `${JSON.stringify(record, null, 2)}\n`;
    const temporary = `${this.file}.${process.pid}.tmp`;
    try {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      await writeFile(temporary, text, { mode: 0o600 });
      await rename(temporary, this.file);
    } catch (err) {
      debug('cannot write %s: %s', this.file, (err as Error).message);
    }
  }
}

/**
 * The launches of record `file` whose groups still run, known for good (see the file's comment):
 * what a norikae that was killed left behind. Without a boot to compare (a record of an older
 * version, no /proc), nothing is known to be ours.
 */
export function liveLaunches(file: string): LaunchEntry[] {
  const { boot, entries } = readRecord(file);
  if (boot === undefined || boot !== bootId()) return [];
  return entries.filter((entry) => entry.processes.some((known) => isGroupMember(known, entry.pgid)));
}

/** The boot a record was written in and its launches; nothing when it is missing or unreadable. */
function readRecord(file: string): { boot: string | undefined; entries: LaunchEntry[] } {
  let data: { boot?: unknown; launched?: unknown };
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
  } catch {
    return { boot: undefined, entries: [] };
  }
  const entries = (Array.isArray(data.launched) ? data.launched as unknown[] : []).flatMap((value) => {
    const entry = value as Partial<Record<keyof LaunchEntry, unknown>> | null;
    if (typeof entry?.launchId !== 'string' || typeof entry.service !== 'string' || !isPid(entry.pgid)) return [];
    // An entry of an older version names its group by pid alone: no process in it is known for good.
    const processes = (Array.isArray(entry.processes) ? entry.processes as unknown[] : []).filter((known): known is ProcessId =>
      isPid((known as ProcessId | null)?.pid) && typeof (known as ProcessId).started === 'string');
    return [{ launchId: entry.launchId, service: entry.service, pgid: entry.pgid, processes }];
  });
  return { boot: typeof data.boot === 'string' ? data.boot : undefined, entries };
}

/** A number that can name a process other than init. */
function isPid(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 1;
}
