// Process groups, as Linux shows them in /proc: who is in a group, and which process a pid names
// (with its start time, for good). A launched service runs in a group of its own, so "stop the
// service" means "signal the group until no live member is left". Zombies do not count once all
// their threads are gone: they are dead, and whether anyone reaps them is up to the init process.

import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** How often a stop looks whether the group is gone. */
const EXIT_POLL_MS = 25;
/** How long a group may take to go after SIGKILL before a stop gives up on it. */
const KILL_WAIT_MS = 2000;

/** Sends `signal` to every process of group `pgid`; false if the group has no process left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** The live (non-zombie) processes of group `pgid`. Without /proc, asks the kernel whether any exists. */
export function groupMembers(pgid: number): number[] {
  if (!signalGroup(pgid, 0)) return [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pgid];
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 0x30 || entry.charCodeAt(0) > 0x39) continue;
    const pid = Number(entry);
    const stat = readStat(pid);
    if (stat !== undefined && stat.pgrp === pgid && !hasExited(pid, stat.state)) members.push(pid);
  }
  return members;
}

/** True while any live process of the group is left. */
export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0;
}

/**
 * SIGTERM to every process of group `pgid`, SIGKILL once `timeoutMs` has passed; resolves when no
 * live member is left, or KILL_WAIT_MS after the SIGKILL (a process stuck in the kernel).
 */
export async function stopGroup(pgid: number, timeoutMs: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  if (await waitForGroupExit(pgid, timeoutMs)) return;
  signalGroup(pgid, 'SIGKILL');
  await waitForGroupExit(pgid, KILL_WAIT_MS);
}

/** Polls until group `pgid` has no live member; false if `timeoutMs` passed first (a monotonic clock's ms). */
export async function waitForGroupExit(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!groupAlive(pgid)) return true;
    if (performance.now() >= deadline) return false;
    await sleep(EXIT_POLL_MS);
  }
}

/** True while `pid` is a process that has not exited (a zombie has). */
export function isLiveProcess(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && !hasExited(pid, stat.state);
}

/**
 * Whether a process whose /proc/PID/stat says `state` is gone for good. /proc/PID/stat is the main
 * thread's: it is a zombie ('Z') as soon as that thread is, while the other threads (Node has
 * several) may still be exiting and still hold the process's files, a listening socket among them.
 * A connect then still lands on that socket and is reset when it closes, a moment later; so the
 * process counts as gone only once its last thread is.
 */
export function hasExited(pid: number, state: string): boolean {
  if (state !== 'Z') return false;
  try {
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

/**
 * When a process started (clock ticks since boot, /proc/PID/stat field 22): with its pid, it names
 * one process for good, where a pid alone may be given to another process later.
 */
export function processStartTime(pid: number): string | undefined {
  return readStat(pid)?.startTime;
}

/** A process named for good: its pid and its start time (see processStartTime). */
export interface ProcessId {
  pid: number;
  started: string;
}

/** True while the process `id` names is alive (not a zombie) and a member of group `pgid`. */
export function isGroupMember(id: ProcessId, pgid: number): boolean {
  const stat = readStat(id.pid);
  return stat !== undefined && !hasExited(id.pid, stat.state) && stat.startTime === id.started && stat.pgrp === pgid;
}

/** The process group `pid` is in, while it lives. */
export function processGroupOf(pid: number): number | undefined {
  return readStat(pid)?.pgrp;
}

/** This boot of the system, which start times count from; undefined without /proc. */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** State, process group and start time of a process from /proc/PID/stat, if it still exists. */
function readStat(pid: number): { state: string; pgrp: number; startTime: string } | undefined {
  const fields = statFields(pid);
  return fields === undefined ? undefined : { state: fields[0]!, pgrp: Number(fields[2]), startTime: fields[19]! };
}

/**
 * A /proc/PID/stat line is a few hundred bytes: one buffer serves every read. readFileSync would
 * fstat each file (size 0 in /proc) and allocate 64 KiB for it; a walk of /proc at a launch read
 * every process that way, and twenty launches at once kept the event loop busy for most of a second.
 */
const statBuffer = Buffer.allocUnsafe(4096);

/**
 * The fields of /proc/PID/stat from the state on (field 3, at index 0), if the process exists.
 * The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
 */
export function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    const fd = openSync(`/proc/${pid}/stat`, 'r');
    try {
      const length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
      // A line this long is not one the kernel writes; read it whole anyway.
      text = length < statBuffer.length ? statBuffer.toString('latin1', 0, length) : readFileSync(`/proc/${pid}/stat`, 'latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}
