// Watching the config file for edits. Editors save by writing a new file and renaming it over the
// old one, which ends a watch on the file itself; watching its folder and filtering by name
// survives that. Bursts of events (one save can make several) are folded into one call.

import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import createDebug from 'debug';

const debug = createDebug('norikae:config-watcher');
const SETTLE_MS = 100;

/** Calls `onChange` after `file` changed (and has been quiet for a moment); returns a stop function. */
export function watchConfigFile(file: string, onChange: () => void): () => void {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(dirname(file), (_event, changed) => {
    if (changed !== null && changed.toString() !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, SETTLE_MS);
  });
  watcher.on('error', (err) => debug('watch error: %s', err.message));
  watcher.unref();
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
