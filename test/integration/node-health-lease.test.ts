// The node lease that heartbeats keep alive is remembered, not read from the node's record at
// every renewal (one store call less per node a second on etcd); when the remembered lease is
// gone (expired while the store was out of reach, or revoked) and the node got a new one, the
// next renewal reads the record again and keeps the new one alive. On a real file store, whose
// calls are counted; the renewal clock is driven by the test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { nodeKey } from '../../src/controlplane/store/keys.js';
import { NodeHealth } from '../../src/controlplane/sync/node-health.js';
import { NodeLiveness } from '../../src/controlplane/sync/node-liveness.js';
import { SyncHub } from '../../src/controlplane/sync/sync-hub.js';

const log = pino({ level: 'silent' });
let dir: string;
let store: FileStore;
let hub: SyncHub;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-node-lease-'));
  store = await FileStore.open({ dir });
  hub = await SyncHub.start({
    store,
    trustBundlePem: '',
    coalesceMs: 10,
    encode: () => Buffer.alloc(0),
    log,
  });
});

afterAll(async () => {
  hub?.stop();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("heartbeats keep the node's lease alive", () => {
  it('reads the record once, then only when the lease it knows is gone', async () => {
    let t = 1_000_000;
    const kept: string[] = [];
    let reads = 0;
    const counted = Object.create(store) as FileStore;
    counted.keepAlive = async (lease) => {
      kept.push(lease);
      return store.keepAlive(lease);
    };
    counted.get = async (key) => {
      reads++;
      return store.get(key);
    };
    const health = new NodeHealth({
      store: counted,
      hub,
      liveness: new NodeLiveness(),
      config: {} as never,
      metrics: {} as never,
      log,
      now: () => t,
    });
    const first = await store.grantLease(60_000);
    await store.put(nodeKey('n1'), { name: 'n1', lease: first });
    await health.heartbeat('n1', []);
    t += 2_000;
    await health.heartbeat('n1', []);
    expect(kept).toEqual([first, first]);
    expect(reads).toBe(1);
    // Within a second of the last renewal: none.
    t += 500;
    await health.heartbeat('n1', []);
    expect(kept).toHaveLength(2);
    // The lease is gone and the node got a new one (as identity-service's nodeLease does).
    await store.revokeLease(first);
    const second = await store.grantLease(60_000);
    await store.put(nodeKey('n1'), { name: 'n1', lease: second });
    t += 2_000;
    await health.heartbeat('n1', []);
    expect(kept).toEqual([first, first, first, second]);
    expect(reads).toBe(2);
    t += 2_000;
    await health.heartbeat('n1', []);
    expect(kept.at(-1)).toBe(second);
    expect(reads).toBe(2);
    expect(await store.leaseTimeToLive(second)).toBeDefined();
  });
});
