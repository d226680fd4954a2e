// Replacing a file whole: the new text goes to a temporary file in the same folder, is flushed to
// disk, and is renamed over the old one. A reader (norikae's config watcher, the resolver reading
// /etc/hosts) sees the old file or the new one, never half of one. A symlink is followed (the
// file it points to is replaced, the link stays), and the file keeps its mode and, when we may,
// its owner.

import { chownSync, closeSync, fchmodSync, fsyncSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `text` to `file` atomically. Without `mode`, the file keeps its mode (a new one gets
 * 0644); with it, the file gets `mode` whatever it had (a secret is not loosened by an old file's
 * mode). Throws the system's error (EACCES, EROFS…) for the caller to explain; nothing is left
 * behind when it does. The text is flushed to disk before the rename, so that after a power loss
 * the name holds the old text or the new one; `flush: false` skips that wait (a disk flush, 5–30
 * ms on a busy disk) for a file that is made anew at every start and so cannot stay stale.
 */
export function replaceFile(file: string, text: string, mode?: number, options: { flush?: boolean } = {}): void {
  const target = resolveLink(file);
  const existing = statOf(target);
  const temporary = join(dirname(target), `.${basename(target)}.norikae-${process.pid}.tmp`);
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      // Set after opening: the mode given to open is narrowed by the umask.
      fchmodSync(fd, mode ?? (existing === undefined ? 0o644 : existing.mode & 0o7777));
      writeSync(fd, text);
      if (options.flush !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // root editing /etc/hosts, or a user's file written with sudo: the file stays whose it was.
    if (existing !== undefined && process.getuid?.() === 0 && (existing.uid !== 0 || existing.gid !== 0)) {
      chownSync(temporary, existing.uid, existing.gid);
    }
    renameSync(temporary, target);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}

/** The file a symlink finally points to; `file` itself when it is no link or does not exist yet. */
function resolveLink(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

function statOf(file: string): { mode: number; uid: number; gid: number } | undefined {
  try {
    return statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
