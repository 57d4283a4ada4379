// The control plane's deny list over the real embedded store: what a Revocation resource
// lists is refused by serial until it expires, replicas learn it through the store's watch,
// and the resource goes once its last certificate has expired.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { revocationDocument } from '../../src/controlplane/identity/revocation.js';
import { RevocationList } from '../../src/controlplane/identity/revocation-list.js';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { resourceKey } from '../../src/controlplane/store/keys.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'weft-revocations-'));
  const store = await FileStore.open({ dir });
  const list = await RevocationList.start(store, log);
  cleanups.push(
    () => rm(dir, { recursive: true, force: true }),
    () => store.close(),
    () => list.stop(),
  );
  return { store, list };
}

const NOW = Date.now();
const doc = revocationDocument(
  'n1',
  'deleted',
  [
    { serial: 'aa', notAfterMs: NOW + 60_000, kind: 'node' },
    { serial: 'bb', notAfterMs: NOW + 120_000, kind: 'workload', service: 'web' },
  ],
  NOW,
)!;

describe('RevocationList', () => {
  it('refuses the serials a Revocation stored by another replica lists, through the watch', async () => {
    const { store, list } = await setup();
    expect(list.why('aa')).toBeUndefined();
    await store.put(resourceKey('Revocation', doc.metadata.name), doc);
    await expect.poll(() => list.why('aa')).toBe('node n1 was removed from the mesh');
    expect(list.why('bb')).toBe('node n1 was removed from the mesh');
    // An entry is of no use once its certificate expired.
    expect(list.why('aa', NOW + 60_000)).toBeUndefined();
    expect(list.why('bb', NOW + 60_000)).toBeDefined();
  });

  it('removes a Revocation once its last certificate has expired, not before', async () => {
    const { store, list } = await setup();
    const key = resourceKey('Revocation', doc.metadata.name);
    await store.put(key, doc);
    list.add(doc);
    await list.sweep(NOW + 90_000);
    expect(await store.get(key)).toBeDefined();
    await list.sweep(NOW + 120_000);
    expect(await store.get(key)).toBeUndefined();
    await expect.poll(() => list.why('bb')).toBeUndefined();
  });
});
