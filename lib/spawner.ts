// Spawning from a small process of our own. child_process.spawn blocks its caller until the new
// process has exec'd: a fork (page tables in proportion to the parent's memory), then a wait until
// the child is scheduled and execs, which while twenty dev servers boot on two cores took 50 to
// 200 ms per spawn, with every probe, accept and splice held meanwhile. A worker thread is no way
// out: it forks the same process, so the fork stalls every thread on the shared memory map and,
// until the child execs, each page the main thread writes is copied. So norikae forks once, at the
// start, a process that only spawns (spawn-helper.ts); a launch is a message to it and a reply
// with the pid. Its children are norikae's to signal by pid and group, as before; their output
// and exit come by message.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createDebug } from './packages.js';

const debug = createDebug('norikae:spawner');

export type SpawnRequest =
  | { type: 'spawn'; id: number; file: string; args: string[]; cwd: string | undefined; env: Record<string, string | undefined> }
  /** The pid is known to norikae now (recorded, stopped with the service): see spawn-helper.ts. */
  | { type: 'adopted'; id: number };

export type SpawnReply =
  | { type: 'spawned'; id: number; pid: number; started: string | undefined }
  | { type: 'failed'; id: number; message: string }
  | { type: 'output'; id: number; stream: 'stdout' | 'stderr'; chunk: Uint8Array }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null; error?: string };

export interface SpawnOptions {
  file: string;
  args: string[];
  cwd: string | undefined;
  env: Record<string, string | undefined>;
}

/** What becomes of a spawned process: its output and its exit. */
export interface SpawnHandlers {
  output(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  exit(status: { code: number | null; signal: NodeJS.Signals | null; error?: string }): void;
}

/** A process the spawner started: its pid, and its start time as read before it could be reaped. */
export interface Spawned {
  pid: number;
  started: string | undefined;
}

interface Pending {
  handlers: SpawnHandlers;
  /** Settles the spawn; cleared once it has. */
  settle: ((outcome: Spawned | Error) => void) | undefined;
}

let helper: ChildProcess | undefined;
let nextId = 1;
/** Spawns asked for whose process has not exited yet, by id. */
const live = new Map<number, Pending>();

/**
 * Spawns `file` with `args` (detached: a process group of its own; stdout and stderr piped) from
 * the spawner process, started now if it is not running. Resolves once the process runs, or
 * rejects with the reason it could not start.
 */
export function spawnFromHelper(options: SpawnOptions, handlers: SpawnHandlers): Promise<Spawned> {
  const id = nextId++;
  const spawner = startSpawner();
  return new Promise<Spawned>((resolve, reject) => {
    live.set(id, { handlers, settle: (outcome) => (outcome instanceof Error ? reject(outcome) : resolve(outcome)) });
    // Something of the spawner's is under way: it keeps norikae running, as a child's pipes did.
    spawner.ref();
    spawner.channel?.ref();
    send(spawner, { type: 'spawn', id, ...options });
  });
}

/**
 * The spawner process, started if it is not running. Started ahead of the first launch (see
 * app.ts), the launch does not wait for it to boot (a Node process: tens of milliseconds).
 */
export function startSpawner(): ChildProcess {
  if (helper !== undefined) return helper;
  // Without norikae's own node options (a profiler, a preloaded module): it only spawns.
  // Named from the parent folder: this module also runs inside the command's bundle, in dist/bin/.
  const spawner = fork(fileURLToPath(new URL('../lib/spawn-helper.js', import.meta.url)), [], {
    execArgv: [], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  debug('spawner process started: pid %d', spawner.pid);
  spawner.on('message', (reply: SpawnReply) => onReply(spawner, reply));
  // It could not start (no 'exit' follows then), or it ended: it failed either way.
  spawner.on('error', (err) => {
    debug('spawner process: %s', err.message);
    if (spawner.pid === undefined) ended(spawner, err.message);
  });
  spawner.once('exit', (code, signal) => ended(spawner, `${signal ?? code}`));
  helper = spawner;
  idle(spawner);
  return spawner;
}

/** The spawner process's pid while it runs (for tests). */
export function spawnerPid(): number | undefined {
  return helper?.pid;
}

/** The spawner is gone: what it had in hand can no longer be followed. */
function ended(spawner: ChildProcess, why: string): void {
  if (helper !== spawner) return;
  helper = undefined;
  debug('spawner process ended (%s)', why);
  for (const [id, pending] of live) {
    live.delete(id);
    if (pending.settle !== undefined) pending.settle(new Error(`the spawner process ended (${why})`));
    else pending.handlers.exit({ code: null, signal: null, error: `its exit went unseen: the spawner process ended (${why})` });
  }
}

function onReply(spawner: ChildProcess, reply: SpawnReply): void {
  const pending = live.get(reply.id);
  if (pending === undefined) return;
  switch (reply.type) {
    case 'spawned':
      // The launch takes the pid on within this turn (promise reactions): recorded, and stopped by
      // a quick exit, before any signal handler can run.
      send(spawner, { type: 'adopted', id: reply.id });
      pending.settle?.({ pid: reply.pid, started: reply.started });
      pending.settle = undefined;
      return;
    case 'failed':
      live.delete(reply.id);
      pending.settle?.(new Error(reply.message));
      break;
    case 'output':
      pending.handlers.output(Buffer.from(reply.chunk.buffer, reply.chunk.byteOffset, reply.chunk.byteLength), reply.stream);
      return;
    case 'exit':
      live.delete(reply.id);
      pending.handlers.exit({ code: reply.code, signal: reply.signal, ...(reply.error === undefined ? {} : { error: reply.error }) });
      break;
  }
  if (live.size === 0) idle(spawner);
}

/** Nothing of the spawner's is under way: it keeps no exit of norikae waiting. */
function idle(spawner: ChildProcess): void {
  spawner.unref();
  spawner.channel?.unref();
}

function send(spawner: ChildProcess, request: SpawnRequest): void {
  // Gone (it failed): the exit handler above settles what it had.
  if (spawner.connected) spawner.send(request);
}
