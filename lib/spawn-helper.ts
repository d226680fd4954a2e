// The spawner process (spawner.ts starts it): a small Node process of norikae's that spawns the
// commands it is sent, reads each one's start time before it can be reaped, and relays output and
// exit over IPC. It ends when norikae disconnects (norikae exited, whichever way).

import { spawn, type ChildProcess } from 'node:child_process';
import { processStartTime } from './process-group.js';
import type { SpawnReply, SpawnRequest } from './spawner.js';

/** How long the last output of an exited shell may take to arrive (see `exit` below). */
const PIPE_GRACE_MS = 100;

/** Processes whose pid norikae may not have taken on yet (it exits right then): id → pid. */
const unadopted = new Map<number, number>();

process.on('message', (request: SpawnRequest) => {
  if (request.type === 'adopted') unadopted.delete(request.id);
  else launch(request);
});

// norikae is gone: what it knew of is its to stop (or the next one's, from the launch record);
// what it did not is stopped here, or nobody would.
process.on('disconnect', () => {
  for (const pid of unadopted.values()) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  process.exit(0);
});

function launch(request: SpawnRequest & { type: 'spawn' }): void {
  const { id } = request;
  let child: ChildProcess;
  try {
    child = spawn(request.file, request.args, { cwd: request.cwd, env: request.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // E2BIG (an environment too large for exec) is thrown rather than reported.
    send({ type: 'failed', id, message: (err as Error).message });
    return;
  }
  if (child.pid === undefined) {
    // spawn reports this failure asynchronously too; the listener keeps it from being thrown.
    child.once('error', () => {});
    send({ type: 'failed', id, message: 'no pid' });
    return;
  }
  unadopted.set(id, child.pid);
  // Read before the shell can be reaped: it is our child, and a zombie until this loop turns.
  send({ type: 'spawned', id, pid: child.pid, started: processStartTime(child.pid) });
  // Bounded: while norikae has not taken what was sent (its loop is busy), the pipes are not read,
  // and the command waits on them as it would on norikae's own.
  const resume = (): void => {
    child.stdout!.resume();
    child.stderr!.resume();
  };
  const relay = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
    if (!process.connected) return;
    if (!process.send!({ type: 'output', id, stream, chunk }, resume)) {
      child.stdout!.pause();
      child.stderr!.pause();
    }
  };
  child.stdout!.on('data', (chunk: Buffer) => relay('stdout', chunk));
  child.stderr!.on('data', (chunk: Buffer) => relay('stderr', chunk));
  let ended = false;
  const exit = (status: SpawnReply & { type: 'exit' }): void => {
    if (ended) return;
    ended = true;
    unadopted.delete(id);
    send(status);
  };
  child.once('error', (err) => exit({ type: 'exit', id, code: null, signal: null, error: err.message }));
  child.once('exit', (code, signal) => {
    // The last words of a failing server may still be in the pipes: give them a moment.
    const timer = setTimeout(() => exit({ type: 'exit', id, code, signal }), PIPE_GRACE_MS);
    child.once('close', () => {
      clearTimeout(timer);
      exit({ type: 'exit', id, code, signal });
    });
  });
}

function send(reply: SpawnReply): void {
  // Disconnected meanwhile: the handler above ends this process.
  if (process.connected) process.send!(reply);
}
