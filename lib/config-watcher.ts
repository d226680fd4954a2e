// Watching the config file for edits. Editors save by writing a new file and renaming it over the
// old one, which ends a watch on the file itself; watching its folder and filtering by name
// survives that. A config that is a symlink (dotfile managers make those) is edited where it
// points, so that folder is watched too. Bursts of events (one save can make several) are folded
// into one call.

import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import createDebug from 'debug';

const debug = createDebug('norikae:config-watcher');
/** Quiet time after the last event before the reload; the bench takes it off its reload timings. */
export const SETTLE_MS = 100;

/** Calls `onChange` after `file` changed (and has been quiet for a moment); returns a stop function. */
export function watchConfigFile(file: string, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const changed = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, SETTLE_MS);
  };
  const paths = new Set([file]);
  try {
    paths.add(realpathSync(file));
  } catch {
    // Gone already: the folder watch sees it come back.
  }
  const watchers = [...paths].map((path) => watchName(path, changed));
  return () => {
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
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
