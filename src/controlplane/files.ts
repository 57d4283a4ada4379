// Durable file writes for keys and certificates: temp file, fsync, rename, fsync directory, so
// that a crash leaves either the old file or the new one, never a torn one.
import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileDurable(path: string, data: string, mode: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w', mode);
  try {
    await file.chmod(mode); // the umask may have narrowed or an old temp file kept its mode
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
