// An apply whose etcd transaction committed but whose reply was lost. etcd3 1.1.2 retries every
// unary call, Txn included (see join-retried-txn.test.ts), so the retry's compares fail against
// the apply's own first commit; or the client gives up after the commit. Either way the apply
// must be reported as what it did (created or configured, at the version it wrote), not as a
// conflict, "unchanged" or a store error. The double execution is injected on the replica's
// real store, against a real etcd (started by this file), through the Admin API as `weft apply`.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplyResult } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import type { TxnRequest, TxnResult } from '../../src/controlplane/store/store.js';
import { WeftError } from '../../src/errors.js';
import { adminClient, startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';

let etcd: TestEtcd;
let cp: TestControlPlane;
let dir: string;
/** What the next apply transaction does: run twice (a lost reply retried), or commit and fail. */
let next: 'replay' | 'lose' | 'other-first' | undefined;
let injected = 0;

const isApply = (req: TxnRequest) => req.ops.some((op) => op.key.startsWith('/resources/'));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-apply-retry-'));
  const caKekFile = join(dir, 'kek');
  writeFileSync(caKekFile, randomBytes(32), { mode: 0o600 });
  etcd = await startEtcd();
  cp = await startControlPlane({
    config: {
      store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: `/weft-apply-${process.pid}/` },
      caKekFile,
    },
  });
  const store = cp.controlPlane.store;
  const txn = store.txn.bind(store);
  store.txn = async (req: TxnRequest): Promise<TxnResult> => {
    const mode = isApply(req) ? next : undefined;
    if (mode === undefined) return txn(req);
    next = undefined;
    injected++;
    if (mode === 'other-first') {
      // Someone else's write got in first (another replica): a real conflict, not ours.
      const put = req.ops.find((op) => op.type === 'put' && op.key.startsWith('/resources/'));
      if (put?.type !== 'put') throw new Error('no resource put in the apply');
      const other = structuredClone(put.value) as Record<string, unknown> & {
        metadata: { labels?: Record<string, string> };
      };
      delete other.applyId;
      other.metadata.labels = { by: 'another-replica' };
      await txn({ ops: [{ type: 'put', key: put.key, value: other }] });
      return txn(req);
    }
    await txn(req); // committed; its reply "lost"
    if (mode === 'lose')
      throw new WeftError('WEFT_E_STORE', 'etcd failed to commit a transaction: reply lost');
    return txn(req); // the retry: what the caller sees
  };
}, 120_000);

afterAll(async () => {
  await cp?.stop({ removeDataDir: true });
  await etcd?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const service = (name: string, port: number, resourceVersion?: string) => ({
  apiVersion: 'weft/v1',
  kind: 'Service',
  metadata: { name, ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
  spec: { ports: [{ port }] },
});

async function apply(doc: ReturnType<typeof service>): Promise<ApplyResult> {
  const admin = adminClient(cp);
  try {
    const res = await unary(admin, admin.apply, {
      resources: [
        { kind: 'Service', name: doc.metadata.name, json: JSON.stringify(doc), revision: 0 },
      ],
      source: 'test.yaml',
    });
    return res.results[0]!;
  } finally {
    admin.close();
  }
}

/** The version `weft get` shows (the store's modRevision of the resource). */
async function version(name: string): Promise<number> {
  const admin = adminClient(cp);
  try {
    const res = await unary(admin, admin.get, { kind: 'Service', name });
    return Number(res.resources[0]!.revision);
  } finally {
    admin.close();
  }
}

describe('an apply whose transaction committed but whose reply was lost', () => {
  it('a retried create is reported created, at the version it wrote', async () => {
    next = 'replay';
    const result = await apply(service('retried-create', 80));
    expect(injected).toBe(1);
    expect(result.outcome).toBe('created');
    expect(result.resourceVersion).toBe(await version('retried-create'));
  });

  it('a retried change over the version read is reported configured, not a conflict', async () => {
    await apply(service('retried-change', 80));
    const read = await version('retried-change');
    next = 'replay';
    const result = await apply(service('retried-change', 81, String(read)));
    expect(result.outcome).toBe('configured');
    expect(result.resourceVersion).toBe(await version('retried-change'));
    expect(result.resourceVersion).toBeGreaterThan(read);
  });

  it('a change committed whose client gave up is reported configured, not a store error', async () => {
    await apply(service('lost-reply', 80));
    next = 'lose';
    const result = await apply(service('lost-reply', 82));
    expect(result.outcome).toBe('configured');
    expect(result.resourceVersion).toBe(await version('lost-reply'));
  });

  it('an unchanged apply reports the version it found', async () => {
    await apply(service('same', 80));
    const result = await apply(service('same', 80));
    expect(result.outcome).toBe('unchanged');
    expect(result.resourceVersion).toBe(await version('same'));
  });

  it("another writer's change in between is still a conflict", async () => {
    await apply(service('raced', 80));
    const read = await version('raced');
    next = 'other-first';
    await expect(apply(service('raced', 83, String(read)))).rejects.toThrow(
      /Service\/raced was changed since it was read/,
    );
  });
});
