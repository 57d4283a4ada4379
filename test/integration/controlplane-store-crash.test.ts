// The embedded store under a real crash: a process writing as fast as it can is SIGKILLed;
// every write it had acknowledged is there when the store is opened again.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-store-crash-'));
// The child runs plain node: the build of this tree that the run's global setup made.
const FILE_STORE = fileURLToPath(
  new URL('../../dist/controlplane/store/file-store.js', import.meta.url),
);
/** Acknowledged writes after which the writer kills itself, with more in flight. */
const KILL_AFTER_ACKS = 200;

afterAll(() => rm(dir, { recursive: true, force: true }));

it('keeps every acknowledged write of a process killed mid-write', async () => {
  const script = `
    const { FileStore } = await import(${JSON.stringify(FILE_STORE)});
    const { writeSync } = await import('node:fs');
    const store = await FileStore.open({ dir: ${JSON.stringify(dir)} });
    let i = 0;
    let acked = 0;
    const writer = async () => {
      for (;;) {
        const n = i++;
        await store.put('/n/' + n, { n, pad: 'x'.repeat(4000) });
        // Written at once (not buffered by the stream): the kill must not lose the ack.
        writeSync(1, n + '\\n');
        // Killed on an acknowledgement, while the other writers' puts are queued or in
        // flight: the crash comes mid-write by construction, not by timing.
        if (++acked === ${KILL_AFTER_ACKS}) process.kill(process.pid, 'SIGKILL');
      }
    };
    // Four writers at once, so that writes are coalesced and some are in flight at the kill.
    for (let w = 0; w < 4; w++) writer();`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(child.signal, child.stderr).toBe('SIGKILL');
  const acked = child.stdout.trim().split('\n').filter(Boolean).map(Number);
  expect(acked).toHaveLength(KILL_AFTER_ACKS);
  const store = await FileStore.open({ dir }); // the dead process's lock is taken over
  try {
    for (const n of acked)
      expect((await store.get(`/n/${n}`))?.value, `acknowledged write ${n}`).toMatchObject({ n });
  } finally {
    await store.close();
  }
});
