// Services with `terminal = true` run on a pseudo-terminal, so dev servers colour their output and
// stop at a debugger prompt as they do in a terminal, and `norikae-splice attach NAME` can hand the
// user's terminal to them. tmux provides the terminal (no native module): one private tmux server
// per config, on a socket in the state folder, a session per service. The pane's shell leads its
// own process group (tmux makes it a session leader), so stopping the service and the launch
// record work as for any launch; its output reaches the service's log through `pipe-pane` and a
// FIFO, and its exit status through a file, since the tmux server, not norikae, is its parent.

import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { constants, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { createDebug } from './packages.js';
import { LaunchError, TerminalError } from './errors.js';
import { commandWithPort } from './config.js';
import { LaunchedProcess, type ExitStatus, type LaunchSpec } from './launch.js';
import { isLiveProcess } from './process-group.js';
import { findTmux, TMUX_INSTALL } from './tmux.js';
import type { ServiceLog } from './service-log.js';

const debug = createDebug('norikae:terminal');

/** How often a pane's process is looked for (it is not our child: no exit event). */
const EXIT_POLL_MS = 100;

/** The private tmux server's socket of the norikae running `configFile` (one per config, like the launch record). */
export function terminalSocket(stateDir: string, configFile: string): string {
  return join(stateDir, `tmux-${createHash('sha256').update(configFile).digest('hex').slice(0, 12)}.sock`);
}

/** A service's tmux session name: tmux takes "." and ":" for separators. */
export function sessionName(service: string): string {
  return service.replaceAll(/[.:]/g, '_');
}

/** The tmux server of one norikae: launches services on its terminals, and finds them for `attach`. */
export class TerminalHost {
  constructor(
    readonly socket: string,
    private readonly tmux: string | undefined = findTmux(),
  ) {}

  /**
   * Starts the command in a new tmux session, detached; its output goes to `log`. The command
   * waits (tmux wait-for) until pipe-pane is in place, so no early line is lost. Throws
   * LaunchError when tmux is missing or refuses.
   */
  launch(spec: LaunchSpec, log: ServiceLog): LaunchedProcess {
    const tmux = this.tmux;
    if (tmux === undefined) throw new LaunchError(spec.name, `cannot launch ${spec.name}: terminal = true needs tmux (${TMUX_INSTALL})`);
    const dir = join(this.socket.replace(/\.sock$/, ''));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = randomUUID();
    const fifo = join(dir, `${id}.out`);
    const statusFile = join(dir, `${id}.status`);
    const made = spawnSync('mkfifo', ['-m', '600', fifo], { encoding: 'utf8' });
    if (made.status !== 0) throw new LaunchError(spec.name, `cannot launch ${spec.name}: mkfifo failed: ${made.stderr || made.error?.message}`);
    // Read-write: opening never blocks, and the FIFO stays open across the writer's restarts.
    const output = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
    output.on('data', (chunk: Buffer) => log.write(chunk));
    output.on('error', (err) => debug('%s: output: %s', spec.name, err.message));
    const session = sessionName(spec.name);
    const channel = `norikae-${id}`;
    // $0 the command, $1 the channel, $2 the status file, $3 tmux, $4 its socket.
    const wrapper = '"$3" -S "$4" wait-for "$1"; /bin/sh -c "$0"; echo $? > "$2"';
    const env = { PORT: String(spec.port), ...spec.env };
    const args = [
      '-S', this.socket, 'new-session', '-d', '-s', session, '-x', '200', '-y', '50', '-c', spec.cwd ?? process.cwd(),
      ...Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`]),
      '-P', '-F', '#{pane_pid}',
      '/bin/sh', '-c', wrapper, commandWithPort(spec.command, spec.port), channel, statusFile, tmux, this.socket,
      ';', 'pipe-pane', '-o', '-t', `=${session}:`, `exec cat >> '${fifo}'`,
      ';', 'wait-for', '-S', channel,
    ];
    // A session of this name left by a run that was killed: its process group is the orphan clean-up's.
    spawnSync(tmux, ['-S', this.socket, 'kill-session', '-t', `=${session}`], { stdio: 'ignore' });
    const started = spawnSync(tmux, args, { encoding: 'utf8', env: { ...process.env, TMUX: '' } });
    const pid = Number(started.stdout.trim().split('\n')[0]);
    if (started.status !== 0 || !Number.isInteger(pid) || pid <= 0) {
      output.destroy();
      rmSync(fifo, { force: true });
      throw new LaunchError(spec.name, `cannot launch ${spec.name} in tmux: ${(started.stderr || started.error?.message || 'no pane').trim()}`);
    }
    debug('launched %s in tmux session %s, pane pid %d', spec.name, session, pid);
    const exited = new Promise<ExitStatus>((resolve) => {
      const timer = setInterval(() => {
        if (isLiveProcess(pid)) return;
        clearInterval(timer);
        const status = exitStatus(statusFile);
        // The pane's last output may still be in the FIFO: give it a moment, as for a child's pipes.
        setTimeout(() => {
          output.destroy();
          rmSync(fifo, { force: true });
          rmSync(statusFile, { force: true });
          resolve(status);
        }, 100);
      }, EXIT_POLL_MS);
    });
    return new LaunchedProcess(pid, exited);
  }

  /** Whether the service has a session now (it runs on a terminal). */
  hasSession(service: string): boolean {
    if (this.tmux === undefined) return false;
    return spawnSync(this.tmux, ['-S', this.socket, 'has-session', '-t', `=${sessionName(service)}`], { stdio: 'ignore' }).status === 0;
  }

  /**
   * Connects this process's terminal to the service's session until the user detaches (tmux's
   * detach key, Ctrl-b d); returns tmux's exit status. The service keeps running.
   */
  attach(service: string): number {
    if (this.tmux === undefined) throw new TerminalError(`attach needs tmux (${TMUX_INSTALL})`);
    if (!this.hasSession(service)) {
      throw new TerminalError(`${service} has no terminal now: it is not running (start it with \`norikae-splice start ${service}\`), or it is not a terminal = true service`);
    }
    // Our server is not the one a surrounding tmux runs: nesting it is what the user asked for.
    const result = spawnSync(this.tmux, ['-S', this.socket, 'attach-session', '-t', `=${sessionName(service)}`], { stdio: 'inherit', env: { ...process.env, TMUX: '' } });
    return result.status ?? 1;
  }
}

/** The exit status the wrapper wrote; a signal above 128, as the shell reports it. None: the wrapper itself was signalled (a stop of the group). */
function exitStatus(file: string): ExitStatus {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return { code: null, signal: null, error: undefined };
  }
  const code = Number(text);
  if (code > 128) {
    const signal = Object.entries(osConstants.signals).find(([, number]) => number === code - 128)?.[0] as NodeJS.Signals | undefined;
    if (signal !== undefined) return { code: null, signal };
  }
  return { code: Number.isInteger(code) ? code : null, signal: null };
}
