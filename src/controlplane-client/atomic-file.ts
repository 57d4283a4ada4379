// Crash-safe file writes for the agent's data directory: a reader (or the agent after a power
// loss) sees either the old file or the new one, never a torn one: write a temp file, fsync it,
// rename it over the target, fsync the directory so the rename itself is durable.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WeftError } from '../errors.js';

/**
 * Writes data to path atomically with the given mode (0600 for keys and certificates); data may
 * come in pieces (strings written one after another).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string>,
  mode = 0o600,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(tmp, 'wx', mode);
    try {
      // Each writeFile goes on from where the one before ended.
      if (typeof data === 'string' || data instanceof Uint8Array) await file.writeFile(data);
      else for (const piece of data) await file.writeFile(piece);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    await syncDir(dir);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new WeftError('WEFT_E_STORE', `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Creates dir (and parents) with the given mode; an existing dir is tightened to it. */
export async function ensurePrivateDir(dir: string, mode = 0o700): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode });
    // mkdir's mode only applies to directories it creates, and is filtered by the umask.
    const handle = await open(dir, 'r');
    try {
      await handle.chmod(mode);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new WeftError(
      'WEFT_E_STORE',
      `cannot create data directory ${dir}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
