// The embedded store, through its interface: revisions, compare-and-swap, atomic transactions,
// watches, leases, and what survives a restart or a crash in the middle of a write.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { StoreCompactedError, type WatchBatch } from '../../src/controlplane/store/store.js';

const dirs: string[] = [];
const open: FileStore[] = [];

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-store-test-'));
  dirs.push(dir);
  return dir;
}

async function openStore(
  dir: string,
  options: { historyEvents?: number; leaseCheckMs?: number; changeLogSize?: number } = {},
): Promise<FileStore> {
  const store = await FileStore.open({ dir, ...options });
  open.push(store);
  return store;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('revisions and compare-and-swap', () => {
  it('counts one revision per transaction and tracks each key', async () => {
    const store = await openStore(newDir());
    expect(await store.revision()).toBe(0);
    expect((await store.put('/a', { n: 1 })).revision).toBe(1);
    expect((await store.put('/a', { n: 2 })).revision).toBe(2);
    expect(
      (
        await store.txn({
          ops: [
            { type: 'put', key: '/b', value: 1 },
            { type: 'put', key: '/c', value: 2 },
          ],
        })
      ).revision,
    ).toBe(3);
    expect(await store.get('/a')).toEqual({
      key: '/a',
      value: { n: 2 },
      createRevision: 1,
      modRevision: 2,
      version: 2,
    });
    expect((await store.get('/c'))?.modRevision).toBe(3);
    const list = await store.list('/');
    expect(list.entries.map((e) => e.key)).toEqual(['/a', '/b', '/c']);
    expect(list.revision).toBe(3);
  });

  it('refuses a write whose compare no longer holds, and changes nothing', async () => {
    const store = await openStore(newDir());
    const first = await store.put('/k', 'v1');
    expect((await store.put('/k', 'v2', { prevModRevision: first.revision })).succeeded).toBe(true);
    // A second writer still holding the first revision loses.
    const stale = await store.txn({
      compares: [{ key: '/k', modRevision: first.revision }],
      ops: [
        { type: 'put', key: '/k', value: 'lost' },
        { type: 'put', key: '/other', value: 'lost too' },
      ],
    });
    expect(stale.succeeded).toBe(false);
    expect((await store.get('/k'))?.value).toBe('v2');
    expect(await store.get('/other')).toBeUndefined();
    expect(await store.revision()).toBe(2);
  });

  it('creates only when absent (modRevision 0)', async () => {
    const store = await openStore(newDir());
    expect((await store.put('/vip/1', 'a', { prevModRevision: 0 })).succeeded).toBe(true);
    expect((await store.put('/vip/1', 'b', { prevModRevision: 0 })).succeeded).toBe(false);
    expect((await store.get('/vip/1'))?.value).toBe('a');
  });

  it('lets exactly one of many concurrent compare-and-swaps win', async () => {
    const store = await openStore(newDir());
    const { revision } = await store.put('/token', { used: false });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.put('/token', { used: true, by: i }, { prevModRevision: revision }),
      ),
    );
    expect(results.filter((r) => r.succeeded)).toHaveLength(1);
  });

  it('does not let a stored value alias the caller’s object', async () => {
    const store = await openStore(newDir());
    const value = { list: [1] };
    await store.put('/x', value);
    value.list.push(2);
    expect((await store.get('/x'))?.value).toEqual({ list: [1] });
  });
});

describe('durability', () => {
  it('keeps every acknowledged write across a restart, revision included', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const writes = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.put(`/k/${i}`, { i })),
    );
    await store.delete('/k/3');
    await store.close();
    const again = await openStore(dir);
    expect(await again.revision()).toBe(Math.max(...writes.map((w) => w.revision)) + 1);
    expect((await again.list('/k/')).entries).toHaveLength(49);
    expect((await again.get('/k/7'))?.value).toEqual({ i: 7 });
  });

  it('ignores a temp file left by a write that never finished (crash before rename)', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/kept', 'yes');
    await store.close();
    // What a crash between "write temp file" and "rename" leaves behind: a torn temp file.
    writeFileSync(
      join(dir, 'state.json.tmp'),
      '{"format":"weft-store/1","revision":99,"entries":[{"key":"/torn"',
    );
    const again = await openStore(dir);
    expect((await again.get('/kept'))?.value).toBe('yes');
    expect(await again.get('/torn')).toBeUndefined();
    expect(await again.revision()).toBe(1);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a second process on the same directory', async () => {
    const dir = newDir();
    await openStore(dir);
    await expect(FileStore.open({ dir })).rejects.toThrow('already open in this process');
  });

  it('refuses a state file it cannot read instead of starting empty', async () => {
    const dir = newDir();
    writeFileSync(join(dir, 'state.json'), 'not json');
    await expect(FileStore.open({ dir })).rejects.toThrow('is not a weft store');
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('not json');
  });
});

describe('watch', () => {
  /** A watch's batches and errors as they come, and promises of the next of each. */
  function collect(store: FileStore, prefix: string, from: number) {
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

  it('replays history from a revision, then follows live changes, one batch per transaction', async () => {
    const store = await openStore(newDir());
    await store.put('/r/a', 1); // 1
    await store.put('/other', 1); // 2
    await store.txn({
      ops: [
        { type: 'put', key: '/r/b', value: 2 },
        { type: 'delete', key: '/r/a' },
      ],
    }); // 3
    const w = collect(store, '/r/', 2);
    await store.put('/r/c', 3); // 4
    await w.upTo(4);
    expect(w.batches.map((b) => [b.revision, b.events.map((e) => `${e.type} ${e.key}`)])).toEqual([
      [3, ['put /r/b', 'delete /r/a']],
      [4, ['put /r/c']],
    ]);
    w.watch.cancel();
  });

  it('reports compacted history so the caller can re-list', async () => {
    const store = await openStore(newDir(), { historyEvents: 2 });
    for (let i = 0; i < 5; i++) await store.put(`/k/${i}`, i);
    const w = collect(store, '/', 1);
    // The error ends the watch: no batch can follow it.
    expect(await w.ended).toBeInstanceOf(StoreCompactedError);
    expect(w.batches).toEqual([]);
  });

  it('after a restart, follows from the current revision', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/a', 1);
    await store.close();
    const again = await openStore(dir);
    const w = collect(again, '/', 2);
    await again.put('/b', 2);
    await w.upTo(2);
    expect(w.batches.map((b) => b.revision)).toEqual([2]);
    const old = collect(again, '/', 1);
    expect(await old.ended).toBeInstanceOf(StoreCompactedError);
    expect(old.batches).toEqual([]);
  });
});

describe('change log', () => {
  it('tells which keys changed in which revision, across a restart', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/r/a', 1); // 1
    await store.put('/t/x', 1); // 2: another prefix
    await store.txn({
      ops: [
        { type: 'put', key: '/r/b', value: 1 },
        { type: 'delete', key: '/r/a' },
      ],
    }); // 3
    await store.close();
    const again = await openStore(dir);
    expect(await again.changes('/r/')).toEqual({
      from: 0,
      to: 3,
      changes: [
        { revision: 1, key: '/r/a', type: 'put' },
        { revision: 3, key: '/r/b', type: 'put' },
        { revision: 3, key: '/r/a', type: 'delete' },
      ],
    });
  });

  it('forgets whole revisions beyond its size and says from where it knows', async () => {
    const store = await openStore(newDir(), { changeLogSize: 3 });
    await store.txn({
      ops: [
        { type: 'put', key: '/a', value: 1 },
        { type: 'put', key: '/b', value: 1 },
      ],
    }); // 1
    await store.put('/c', 1); // 2
    await store.put('/d', 1); // 3
    const log = await store.changes('/');
    expect(log.from).toBe(1);
    expect(log.changes.map((c) => c.key)).toEqual(['/c', '/d']);
  });
});

describe('leases', () => {
  // Leases keep time with Date.now and a setInterval sweep: fake both and move the clock.
  const fakeClock = () => vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });

  /**
   * A write after the sweeps so far: a revocation one of them started is enqueued at once, so
   * it has committed when this write has.
   */
  const afterSweeps = (store: FileStore) => store.put('/sentinel', Date.now());

  it('deletes the keys of a lease that is not kept alive, and only those', async () => {
    fakeClock();
    const store = await openStore(newDir(), { leaseCheckMs: 20 });
    const lease = await store.grantLease(150);
    await store.put('/w/1', 'a', { lease });
    await store.put('/w/2', 'b', { lease });
    await store.put('/w/3', 'c');
    // Kept alive for well past its TTL, swept every 20 ms all along.
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(60);
      expect(await store.keepAlive(lease)).toBe(true);
    }
    await vi.advanceTimersByTimeAsync(140);
    await afterSweeps(store);
    expect((await store.list('/w/')).entries).toHaveLength(3);
    // Then not kept alive: the next sweep past its TTL revokes it.
    await vi.advanceTimersByTimeAsync(40);
    await afterSweeps(store);
    expect((await store.list('/w/')).entries.map((e) => e.key)).toEqual(['/w/3']);
    expect(await store.keepAlive(lease)).toBe(false);
    await expect(store.put('/w/4', 'd', { lease })).rejects.toThrow('does not exist');
  });

  it('revokes at once on request', async () => {
    const store = await openStore(newDir());
    const lease = await store.grantLease(60_000);
    await store.put('/w/1', 'a', { lease });
    await store.revokeLease(lease);
    expect(await store.get('/w/1')).toBeUndefined();
  });

  it('keeps leases across a restart with a fresh TTL', async () => {
    fakeClock();
    const dir = newDir();
    const store = await openStore(dir, { leaseCheckMs: 20 });
    const lease = await store.grantLease(200);
    await store.put('/w/1', 'a', { lease });
    await store.close();
    // Down for longer than the TTL: the lease counts from the restart, not from before it.
    await vi.advanceTimersByTimeAsync(1_000);
    const again = await openStore(dir, { leaseCheckMs: 20 });
    await vi.advanceTimersByTimeAsync(180);
    await afterSweeps(again);
    expect((await again.get('/w/1'))?.lease).toBe(lease);
    expect(await again.keepAlive(lease)).toBe(true);
    // Not kept alive again: gone one TTL later.
    await vi.advanceTimersByTimeAsync(220);
    await afterSweeps(again);
    expect(await again.get('/w/1')).toBeUndefined();
  });
});
