// The processes a launch started, wherever they went. A stop signals the launch's process group,
// but a process may leave it (`setsid`, a daemon's double fork) and escape every signal to the
// group. So each running launch's tree is walked in /proc (parent links) once a second and at
// its stop: every process seen, named by pid and start time, is remembered (and written to the
// launch record, for the orphan clean-up after a SIGKILL), and a stop signals each of them that
// still lives besides the group. A process whose parent died before the walk saw it is
// re-parented to init and cannot be told from anyone else's: without cgroups, the walk while the
// parents live is what there is.

import { readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { hasExited, signalGroup, statFields, type ProcessId } from './process-group.js';

/** How often running launches are walked. */
const WALK_INTERVAL_MS = 1000;
/** How often a stop looks whether everything is gone. */
const EXIT_POLL_MS = 25;
/** How long processes may take to go after SIGKILL before a stop gives up on them. */
const KILL_WAIT_MS = 2000;

export interface ProcessEntry {
  ppid: number;
  pgrp: number;
  started: string;
  zombie: boolean;
}

/** Processes the watch reads per turn of the event loop (see readProcessesInTurns). */
export const PROCESSES_PER_TURN = 32;

/** Every process of the system, from one walk of /proc (empty without /proc). */
function readProcesses(): Map<number, ProcessEntry> {
  const table = new Map<number, ProcessEntry>();
  for (const pid of processIds()) readProcess(table, pid);
  return table;
}

/**
 * The same, read PROCESSES_PER_TURN at a time with a turn of the event loop between: the watch
 * of running launches walks /proc once a second, and all at once that blocked every connection
 * for milliseconds on a quiet machine with a few hundred processes, and for hundreds of them on
 * a loaded one. Not a snapshot: a process that forks or exits meanwhile is seen by the next walk.
 */
export async function readProcessesInTurns(): Promise<Map<number, ProcessEntry>> {
  const table = new Map<number, ProcessEntry>();
  const pids = processIds();
  for (let i = 0; i < pids.length; i++) {
    if (i > 0 && i % PROCESSES_PER_TURN === 0) await nextTurn();
    readProcess(table, pids[i]!);
  }
  return table;
}

function processIds(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((entry) => entry.charCodeAt(0) >= 0x30 && entry.charCodeAt(0) <= 0x39).map(Number);
}

function readProcess(table: Map<number, ProcessEntry>, pid: number): void {
  const fields = statFields(pid);
  // Gone meanwhile.
  if (fields === undefined) return;
  table.set(pid, { ppid: Number(fields[1]), pgrp: Number(fields[2]), started: fields[19]!, zombie: hasExited(pid, fields[0]!) });
}

/** The processes of one launch: its group (while one of ours is in it) and every descendant seen. */
export class LaunchTree {
  /** Every process seen of this launch: pid → start time. */
  private readonly known = new Map<number, string>();

  /**
   * `pgid`: the launch's group, undefined when it is not known to be ours (an orphan's group no
   * process of ours is in). `onSeen` is told of each process seen for the first time.
   */
  constructor(
    readonly pgid: number | undefined,
    known: readonly ProcessId[],
    private readonly onSeen: (ids: ProcessId[]) => void = () => {},
  ) {
    for (const id of known) this.known.set(id.pid, id.started);
  }

  /** Walks /proc: the live members of the group and the descendants of every live known process join the tree. */
  refresh(table = readProcesses()): void {
    const children = new Map<number, number[]>();
    for (const [pid, entry] of table) {
      if (entry.zombie) continue;
      const list = children.get(entry.ppid);
      if (list === undefined) children.set(entry.ppid, [pid]);
      else list.push(pid);
    }
    const queue = [...this.known].filter(([pid, started]) => table.get(pid)?.started === started).map(([pid]) => pid);
    if (this.pgid !== undefined) for (const [pid, entry] of table) if (entry.pgrp === this.pgid && !entry.zombie) queue.push(pid);
    const seen: ProcessId[] = [];
    for (let i = 0; i < queue.length; i++) {
      const pid = queue[i]!;
      const entry = table.get(pid)!;
      if (this.known.get(pid) !== entry.started) {
        this.known.set(pid, entry.started);
        seen.push({ pid, started: entry.started });
      }
      for (const child of children.get(pid) ?? []) if (!queue.includes(child)) queue.push(child);
    }
    if (seen.length > 0) this.onSeen(seen);
  }

  /** Every process seen of this launch, alive or not. */
  seen(): ProcessId[] {
    return [...this.known].map(([pid, started]) => ({ pid, started }));
  }

  /** The known processes still alive: same pid and start time, not zombies. */
  alive(table = readProcesses()): ProcessId[] {
    return [...this.known].filter(([pid, started]) => {
      const entry = table.get(pid);
      return entry !== undefined && !entry.zombie && entry.started === started;
    }).map(([pid, started]) => ({ pid, started }));
  }

  /** Whether anything of the launch lives: a member of its group, or a known process. */
  lives(table = readProcesses()): boolean {
    if (this.pgid !== undefined && [...table.values()].some((entry) => entry.pgrp === this.pgid && !entry.zombie)) return true;
    return this.alive(table).length > 0;
  }

  /** Sends `signal` to the group and to every known process alive (those that left it included). */
  signal(signal: NodeJS.Signals): void {
    if (this.pgid !== undefined) signalGroup(this.pgid, signal);
    for (const { pid } of this.alive()) {
      try {
        process.kill(pid, signal);
      } catch {
        // Gone meanwhile, or no longer ours to signal.
      }
    }
  }

  /**
   * SIGTERM to all of it, SIGKILL once `timeoutMs` has passed; resolves when nothing of it lives,
   * or KILL_WAIT_MS after the SIGKILL. The tree is walked again as it goes (a dying process may fork).
   */
  async stop(timeoutMs: number): Promise<void> {
    this.refresh();
    if (!this.lives()) return;
    this.signal('SIGTERM');
    if (await this.waitGone(timeoutMs)) return;
    this.refresh();
    this.signal('SIGKILL');
    await this.waitGone(KILL_WAIT_MS);
  }

  private async waitGone(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const table = readProcesses();
      this.refresh(table);
      if (!this.lives(table)) return true;
      if (performance.now() >= deadline) return false;
      await sleep(Math.min(EXIT_POLL_MS, Math.max(1, deadline - performance.now())));
    }
  }
}

/** Trees walked once a second while their launch runs; one walk of /proc serves them all. */
const watched = new Set<LaunchTree>();
let walker: NodeJS.Timeout | undefined;
/** Walks of /proc by the watch, for tests: launches do not add any. */
let watchWalks = 0;

/** How many times the watch has walked /proc so far. */
export function watchWalkCount(): number {
  return watchWalks;
}

/**
 * Walks `tree` once a second, with every other running launch, until the returned function is
 * called; the first walk is the next of those, not one at the spawn. A walk reads every process
 * of the system with the event loop blocked, milliseconds on a quiet machine and hundreds of them
 * on a loaded one: twenty services launched by twenty first requests walked /proc twenty times
 * while their clients waited. At the spawn the shell has hardly run, so that walk found nothing.
 */
export function watchTree(tree: LaunchTree): () => void {
  watched.add(tree);
  if (walker === undefined) {
    walker = setInterval(() => void walkWatched(), WALK_INTERVAL_MS);
    walker.unref();
  }
  return () => {
    watched.delete(tree);
    if (watched.size === 0) {
      clearInterval(walker);
      walker = undefined;
    }
  };
}

/** Whether a walk of the watch is under way (over several turns): the next waits for the one after. */
let walking = false;

async function walkWatched(): Promise<void> {
  if (walking) return;
  walking = true;
  try {
    watchWalks++;
    const table = await readProcessesInTurns();
    for (const each of watched) {
      each.refresh(table);
      // All gone: nothing more will be seen of it.
      if (!each.lives(table)) watched.delete(each);
    }
    if (watched.size === 0) {
      clearInterval(walker);
      walker = undefined;
    }
  } finally {
    walking = false;
  }
}
