// The embedded store under a real crash: a process writing as fast as it can is SIGKILLed;
// every write it had acknowledged is there when the store is opened again.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { buildWeft } from '../helpers/controlplane.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-store-crash-'));

beforeAll(() => buildWeft());
afterAll(() => rm(dir, { recursive: true, force: true }));

it('keeps every acknowledged write of a process killed mid-write', async () => {
  const script = `
    const { FileStore } = await import(${JSON.stringify(join(process.cwd(), 'dist/controlplane/store/file-store.js'))});
    const store = await FileStore.open({ dir: ${JSON.stringify(dir)} });
    let i = 0;
    const writer = async () => {
      for (;;) {
        const n = i++;
        await store.put('/n/' + n, { n, pad: 'x'.repeat(4000) });
        process.stdout.write(n + '\\n');
      }
    };
    // Four writers at once, so that writes are coalesced and some are in flight at the kill.
    for (let w = 0; w < 4; w++) writer();
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 400);`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(child.signal, child.stderr).toBe('SIGKILL');
  const acked = child.stdout.trim().split('\n').filter(Boolean).map(Number);
  expect(acked.length).toBeGreaterThan(10);
  const store = await FileStore.open({ dir }); // the dead process's lock is taken over
  try {
    for (const n of acked)
      expect((await store.get(`/n/${n}`))?.value, `acknowledged write ${n}`).toMatchObject({ n });
  } finally {
    await store.close();
  }
});
