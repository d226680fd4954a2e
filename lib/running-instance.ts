// Which norikae-splice runs a config, read from its launch record (see launch-record.ts): the
// record names its owner (pid and start time) and the HTTP addresses it listens on, so the CLI's
// `status`, `logs`, `stop`… find it even when it was started with --listen, and a second start on
// the same config refuses instead of taking the first one's services for orphans.

import { readFileSync } from 'node:fs';
import type { ListenAddress } from './address.js';
import { bootId, isLiveProcess, processStartTime } from './process-group.js';

/** The norikae-splice that owns a launch record while it runs. */
export interface RunningInstance {
  pid: number;
  /** Its HTTP listeners, port 0 resolved; empty until it has bound them. */
  listening: ListenAddress[];
}

/** The norikae that owns the record `file`, while it runs; undefined when none does or the file is missing. */
export function runningInstance(file: string): RunningInstance | undefined {
  let data: { pid?: unknown; started?: unknown; boot?: unknown; listening?: unknown };
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(data.pid) || (data.pid as number) <= 1) return undefined;
  const pid = data.pid as number;
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  if (!ownerRuns(pid, text(data.started), text(data.boot))) return undefined;
  const listening = (Array.isArray(data.listening) ? data.listening as unknown[] : []).filter((address): address is ListenAddress =>
    typeof (address as ListenAddress)?.host === 'string' && Number.isInteger((address as ListenAddress)?.port));
  return { pid, listening };
}

/**
 * Whether the norikae that wrote a record still runs: its pid is live, with the start time it
 * recorded, in the same boot (a pid the system gave to another process since, even another
 * norikae-splice, does not count). A record without a start time (written by an older version)
 * takes any live process running norikae-splice for it.
 */
function ownerRuns(pid: number, started: string | undefined, boot: string | undefined): boolean {
  if (!isLiveProcess(pid)) return false;
  if (boot !== undefined && boot !== bootId()) return false;
  if (started !== undefined) return processStartTime(pid) === started;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('norikae-splice');
  } catch {
    return false;
  }
}
