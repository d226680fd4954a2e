// Watching the config file for edits. Editors save by writing a new file and renaming it over the
// old one, which ends a watch on the file itself; watching its folder and filtering by name
// survives that. A config that is a symlink (dotfile managers make those) is edited where it
// points, so that folder is watched too, and the link is resolved again on every event: a link
// pointed at another file (`ln -sfn new.toml norikae.toml`) moves that watch to the new target.
// Bursts of events (one save can make several) are folded into one call.

import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createDebug } from './packages.js';

const debug = createDebug('norikae:config-watcher');
/** Quiet time after the last event before the reload; the bench takes it off its reload timings. */
export const SETTLE_MS = 100;

/** Calls `onChange` after `file` changed (and has been quiet for a moment); returns a stop function. */
export function watchConfigFile(file: string, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** The file the link points to as last resolved, and the watch of its folder (none when `file` is no link). */
  let target: { path: string; watcher: FSWatcher | undefined } = { path: file, watcher: undefined };
  const changed = (): void => {
    if (closed) return;
    aim();
    clearTimeout(timer);
    timer = setTimeout(onChange, SETTLE_MS);
  };
  /** Resolves the link again and, when it points elsewhere now, watches the new target's folder instead. */
  const aim = (): void => {
    let path: string;
    try {
      path = realpathSync(file);
    } catch {
      // Gone for now (a save in progress, a dangling link): the folder watch sees it come back.
      return;
    }
    if (path === target.path) return;
    debug('%s now points to %s', file, path);
    target.watcher?.close();
    target = { path, watcher: path === file ? undefined : watchName(path, changed) };
  };
  const own = watchName(file, changed);
  aim();
  return () => {
    closed = true;
    clearTimeout(timer);
    own.close();
    target.watcher?.close();
  };
}

/** Watches `path`'s folder for events about `path`'s name. */
function watchName(path: string, onEvent: () => void): FSWatcher {
  const name = basename(path);
  const watcher = watch(dirname(path), (_event, changed) => {
    if (changed === null || changed.toString() === name) onEvent();
  });
  watcher.on('error', (err) => debug('watch error: %s', err.message));
  watcher.unref();
  return watcher;
}
