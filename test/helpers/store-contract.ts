// The Store contract (src/controlplane/store/store.ts) as one suite that every store runs: the
// embedded file store (test/unit/controlplane-store.test.ts) and the etcd store
// (test/integration/etcd-store.test.ts). Revisions are compared with the one a test started
// at, never as absolute numbers: etcd counts every write to the cluster, from 1.
import { describe, expect, it } from 'vitest';
import {
  type Store,
  StoreCompactedError,
  type WatchBatch,
} from '../../src/controlplane/store/store.js';
import { waitFor } from './wait.js';

export interface StoreHarness {
  /** A store with nothing under "/" yet (its own directory, or its own etcd prefix). */
  open(): Promise<Store>;
  /** A store whose watch history can be made to forget revisions (see compact). */
  openForCompaction(): Promise<Store>;
  /** After this, watch() from before `revision` fails with StoreCompactedError. */
  compact(store: Store, revision: number): Promise<void>;
  /** A lease TTL the store honours (etcd raises anything under about 2 s), and the deadline
   * to wait for a lease of that TTL to expire. */
  leaseTtlMs: number;
  leaseExpiryTimeoutMs: number;
}

/** A watch's batches and errors as they come, with waits for a revision and for its end. */
export function collect(store: Store, prefix: string, from: number) {
  const batches: WatchBatch[] = [];
  const errors: Error[] = [];
  let batchSeen: (b: WatchBatch) => void = () => {};
  let errorSeen: (e: Error) => void = () => {};
  const watch = store.watch(prefix, from, {
    onBatch: (b) => {
      batches.push(b);
      batchSeen(b);
    },
    onError: (e) => {
      errors.push(e);
      errorSeen(e);
    },
  });
  /** Resolves once the batch of `revision` came: every batch before it has come too. */
  const upTo = (revision: number) =>
    new Promise<void>((resolve) => {
      if (batches.some((b) => b.revision >= revision)) return resolve();
      batchSeen = (b) => b.revision >= revision && resolve();
    });
  const ended = new Promise<Error>((resolve) => {
    errorSeen = resolve;
  });
  return { batches, errors, watch, upTo, ended };
}

export function storeContract(name: string, harness: StoreHarness): void {
  describe(`${name}: the Store contract`, () => {
    it('counts one revision per transaction and tracks each key', async () => {
      const store = await harness.open();
      const r0 = await store.revision();
      expect((await store.put('/a', { n: 1 })).revision).toBe(r0 + 1);
      expect((await store.put('/a', { n: 2 })).revision).toBe(r0 + 2);
      const both = await store.txn({
        ops: [
          { type: 'put', key: '/b', value: 1 },
          { type: 'put', key: '/c', value: 2 },
        ],
      });
      expect(both.revision).toBe(r0 + 3);
      expect(await store.get('/a')).toEqual({
        key: '/a',
        value: { n: 2 },
        createRevision: r0 + 1,
        modRevision: r0 + 2,
        version: 2,
      });
      expect((await store.get('/c'))?.modRevision).toBe(r0 + 3);
      expect(await store.get('/missing')).toBeUndefined();
      const list = await store.list('/');
      expect(list.entries.map((e) => e.key)).toEqual(['/a', '/b', '/c']);
      expect(list.revision).toBe(r0 + 3);
      expect(await store.revision()).toBe(r0 + 3);
    });

    it('lists only the keys under a prefix, sorted by key', async () => {
      const store = await harness.open();
      await store.put('/p/b', 2);
      await store.put('/p/a', 1);
      await store.put('/pq', 3);
      await store.put('/o', 0);
      const list = await store.list('/p/');
      expect(list.entries.map((e) => [e.key, e.value])).toEqual([
        ['/p/a', 1],
        ['/p/b', 2],
      ]);
    });

    it('refuses a write whose compare no longer holds, and changes nothing', async () => {
      const store = await harness.open();
      const first = await store.put('/k', 'v1');
      expect((await store.put('/k', 'v2', { prevModRevision: first.revision })).succeeded).toBe(
        true,
      );
      const before = await store.revision();
      const stale = await store.txn({
        compares: [{ key: '/k', modRevision: first.revision }],
        ops: [
          { type: 'put', key: '/k', value: 'lost' },
          { type: 'put', key: '/other', value: 'lost too' },
        ],
      });
      expect(stale).toEqual({ succeeded: false, revision: before });
      expect((await store.get('/k'))?.value).toBe('v2');
      expect(await store.get('/other')).toBeUndefined();
      expect(await store.revision()).toBe(before);
    });

    it('creates only when absent (modRevision 0), deletes only when unchanged', async () => {
      const store = await harness.open();
      expect((await store.put('/vip/1', 'a', { prevModRevision: 0 })).succeeded).toBe(true);
      expect((await store.put('/vip/1', 'b', { prevModRevision: 0 })).succeeded).toBe(false);
      const entry = await store.get('/vip/1');
      expect(entry?.value).toBe('a');
      expect(
        (await store.delete('/vip/1', { prevModRevision: entry!.modRevision + 1 })).succeeded,
      ).toBe(false);
      expect(
        (await store.delete('/vip/1', { prevModRevision: entry!.modRevision })).succeeded,
      ).toBe(true);
      expect(await store.get('/vip/1')).toBeUndefined();
    });

    it('lets exactly one of many concurrent compare-and-swaps win', async () => {
      const store = await harness.open();
      const { revision } = await store.put('/token', { used: false });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.put('/token', { used: true, by: i }, { prevModRevision: revision }),
        ),
      );
      expect(results.filter((r) => r.succeeded)).toHaveLength(1);
    });

    it('refuses a transaction that changes one key twice', async () => {
      const store = await harness.open();
      await expect(
        store.txn({
          ops: [
            { type: 'put', key: '/twice', value: 1 },
            { type: 'delete', key: '/twice' },
          ],
        }),
      ).rejects.toThrow('changes /twice twice');
    });

    it('does not let a stored value alias the caller’s object', async () => {
      const store = await harness.open();
      const value = { list: [1] };
      await store.put('/x', value);
      value.list.push(2);
      expect((await store.get('/x'))?.value).toEqual({ list: [1] });
    });

    it('replays history from a revision, then follows live changes, one batch per transaction', async () => {
      const store = await harness.open();
      const r1 = (await store.put('/r/a', 1)).revision;
      await store.put('/other', 1);
      const r3 = (
        await store.txn({
          ops: [
            { type: 'put', key: '/r/b', value: 2 },
            { type: 'delete', key: '/r/a' },
          ],
        })
      ).revision;
      const w = collect(store, '/r/', r1 + 1);
      const r4 = (await store.put('/r/c', 3)).revision;
      await w.upTo(r4);
      expect(w.batches.map((b) => [b.revision, b.events.map((e) => `${e.type} ${e.key}`)])).toEqual(
        [
          [r3, ['put /r/b', 'delete /r/a']],
          [r4, ['put /r/c']],
        ],
      );
      // A delete carries the entry as it was.
      expect(w.batches[0]!.events[1]!.entry).toMatchObject({ key: '/r/a', value: 1 });
      expect(w.errors).toEqual([]);
      w.watch.cancel();
    });

    it('stops delivering once cancelled', async () => {
      const store = await harness.open();
      const start = (await store.revision()) + 1;
      const cancelled = collect(store, '/c/', start);
      const sentinel = collect(store, '/c/', start);
      const r1 = (await store.put('/c/1', 1)).revision;
      await cancelled.upTo(r1);
      cancelled.watch.cancel();
      const r2 = (await store.put('/c/2', 2)).revision;
      await sentinel.upTo(r2);
      expect(cancelled.batches.map((b) => b.revision)).toEqual([r1]);
      sentinel.watch.cancel();
    });

    it('reports compacted history so the caller can re-list', async () => {
      const store = await harness.openForCompaction();
      const first = (await store.put('/k/0', 0)).revision;
      let last = first;
      for (let i = 1; i < 5; i++) last = (await store.put(`/k/${i}`, i)).revision;
      await harness.compact(store, last);
      const w = collect(store, '/', first);
      // The error ends the watch: no batch can follow it.
      expect(await w.ended).toBeInstanceOf(StoreCompactedError);
      expect(w.batches).toEqual([]);
    });

    it('tells which keys changed in which revision', async () => {
      const store = await harness.open();
      const before = await store.revision();
      const r1 = (await store.put('/r/a', 1)).revision;
      await store.put('/t/x', 1);
      const r3 = (
        await store.txn({
          ops: [
            { type: 'put', key: '/r/b', value: 1 },
            { type: 'delete', key: '/r/a' },
          ],
        })
      ).revision;
      const log = await store.changes('/r/');
      expect(log.from).toBeLessThanOrEqual(before);
      expect(log.to).toBe(r3);
      expect(log.changes.filter((c) => c.revision > before)).toEqual([
        { revision: r1, key: '/r/a', type: 'put' },
        { revision: r3, key: '/r/b', type: 'put' },
        { revision: r3, key: '/r/a', type: 'delete' },
      ]);
    });

    it('revokes a lease at once on request, with its keys', async () => {
      const store = await harness.open();
      const lease = await store.grantLease(60_000);
      await store.put('/w/1', 'a', { lease });
      expect((await store.get('/w/1'))?.lease).toBe(lease);
      await store.revokeLease(lease);
      expect(await store.get('/w/1')).toBeUndefined();
      expect(await store.keepAlive(lease)).toBe(false);
      await expect(store.put('/w/2', 'b', { lease })).rejects.toThrow('does not exist');
    });

    it('tells a lease’s TTL and what is left of it, until it is gone', async () => {
      const store = await harness.open();
      const lease = await store.grantLease(60_000);
      const left = await store.leaseTimeToLive(lease);
      expect(left?.ttlMs).toBe(60_000);
      expect(left!.remainingMs).toBeGreaterThan(0);
      expect(left!.remainingMs).toBeLessThanOrEqual(60_000);
      await store.revokeLease(lease);
      expect(await store.leaseTimeToLive(lease)).toBeUndefined();
    });

    it('deletes the keys of a lease that is not kept alive, and only those', async () => {
      const store = await harness.open();
      const dying = await store.grantLease(harness.leaseTtlMs);
      const kept = await store.grantLease(harness.leaseTtlMs);
      await store.put('/w/1', 'a', { lease: dying });
      await store.put('/w/2', 'b', { lease: kept });
      await store.put('/w/3', 'c');
      expect(await store.keepAlive(dying)).toBe(true);
      // `kept` is kept alive while `dying` expires: its expiry is the sentinel.
      const keeper = setInterval(() => {
        store.keepAlive(kept).catch(() => {});
      }, harness.leaseTtlMs / 4);
      try {
        await waitFor(
          'the lease that is not kept alive to expire',
          async () => (await store.get('/w/1')) === undefined,
          harness.leaseExpiryTimeoutMs,
        );
        expect((await store.list('/w/')).entries.map((e) => e.key)).toEqual(['/w/2', '/w/3']);
        expect(await store.keepAlive(dying)).toBe(false);
        expect(await store.keepAlive(kept)).toBe(true);
      } finally {
        clearInterval(keeper);
      }
      await store.revokeLease(kept);
    });

    it('fails every call once closed', async () => {
      const store = await harness.open();
      await store.close();
      await expect(store.get('/a')).rejects.toThrow('closed');
      await expect(store.put('/a', 1)).rejects.toThrow('closed');
    });
  });
}
