// One process per data directory: a lock file holding the owner's pid. A lock left by a process
// that no longer exists (a crash) is taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../../errors.js';

export interface DirLock {
  release(): void;
}

const LOCK_FILE = 'store.lock';
// Locks this process holds: a pid match alone cannot tell our live lock from a stale one.
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireDirLock(dir: string): DirLock {
  const path = join(dir, LOCK_FILE);
  if (held.has(path)) throw new WeftError('WEFT_E_STORE', `${dir} is already open in this process`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      held.add(path);
      return {
        release: () => {
          if (!held.delete(path)) return;
          rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WeftError('WEFT_E_STORE', `cannot lock ${path}: ${(err as Error).message}`);
      }
    }
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) {
      throw new WeftError(
        'WEFT_E_STORE',
        `${dir} is in use by another control plane (pid ${pid}); stop it first`,
      );
    }
    rmSync(path, { force: true }); // stale: its owner is gone
  }
  throw new WeftError('WEFT_E_STORE', `cannot lock ${path}: it keeps reappearing`);
}
