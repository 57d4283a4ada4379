// The embedded store: the Store contract every store meets (test/helpers/store-contract.ts), and
// what is the file store's own: what survives a restart or a crash in the middle of a write,
// its bounded change log, and lease timing on a fake clock.
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { StoreCompactedError } from '../../src/controlplane/store/store.js';
import { collect, storeContract } from '../helpers/store-contract.js';

const dirs: string[] = [];
const open: FileStore[] = [];

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-store-test-'));
  dirs.push(dir);
  return dir;
}

async function openStore(
  dir: string,
  options: {
    historyEvents?: number;
    leaseCheckMs?: number;
    changeLogSize?: number;
    journalCompactBytes?: number;
  } = {},
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

storeContract('file store', {
  open: () => openStore(newDir(), { leaseCheckMs: 20 }),
  // Two events of history: the writes of the compaction test push the first ones out.
  openForCompaction: () => openStore(newDir(), { historyEvents: 2 }),
  compact: async () => {},
  leaseTtlMs: 300,
  leaseExpiryTimeoutMs: 10_000,
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

describe('journal', () => {
  const stateFile = (dir: string) => join(dir, 'state.json');
  const journalFile = (dir: string) => join(dir, 'journal.jsonl');
  /** What a crash leaves: the directory's files as they are now, the store still open. */
  const crashImage = (dir: string): string => {
    const copy = newDir();
    for (const f of readdirSync(dir).filter((n) => n !== '.lock' && !n.endsWith('.lock')))
      cpSync(join(dir, f), join(copy, f));
    return copy;
  };
  const bulk = async (store: FileStore, n: number) => {
    for (let i = 0; i < n; i += 100)
      await store.txn({
        ops: Array.from({ length: 100 }, (_, k) => ({
          type: 'put' as const,
          key: `/bulk/${i + k}`,
          value: { pad: 'x'.repeat(1000) },
        })),
      });
  };

  it('writes what a transaction changed, not the whole state again', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await bulk(store, 2_000); // about 2 MB of state
    await store.close(); // the snapshot alone holds it
    const again = await openStore(dir);
    const snapshot = statSync(stateFile(dir));
    for (let i = 0; i < 20; i++) await again.put(`/small/${i}`, i);
    // The snapshot file was not rewritten (a rewrite renames a new file over it).
    expect(statSync(stateFile(dir)).ino).toBe(snapshot.ino);
    expect(statSync(journalFile(dir)).size).toBeLessThan(snapshot.size / 100);
    const image = await openStore(crashImage(dir));
    expect((await image.get('/small/19'))?.value).toBe(19);
    expect((await image.list('/bulk/')).entries).toHaveLength(2_000);
    expect(await image.revision()).toBe(await again.revision());
  });

  it('folds the journal into a new snapshot once it outgrows its bound, losing nothing', async () => {
    const dir = newDir();
    const store = await openStore(dir, { journalCompactBytes: 4_000 });
    const first = statSync(stateFile(dir)).ino;
    for (let i = 0; i < 40; i++) await store.put(`/k/${i}`, { pad: 'y'.repeat(200) });
    expect(statSync(stateFile(dir)).ino).not.toBe(first);
    expect(statSync(journalFile(dir)).size).toBeLessThanOrEqual(4_000);
    const image = await openStore(crashImage(dir));
    expect((await image.list('/k/')).entries).toHaveLength(40);
    expect(await image.changes('/k/')).toEqual(await store.changes('/k/'));
  });

  it('keeps a lease granted after the snapshot, and its removal, across a crash', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const kept = await store.grantLease(60_000);
    const gone = await store.grantLease(60_000);
    await store.revokeLease(gone);
    const image = await openStore(crashImage(dir));
    expect(await image.leaseTimeToLive(kept)).toMatchObject({ ttlMs: 60_000 });
    expect(await image.leaseTimeToLive(gone)).toBeUndefined();
  });

  it('drops a torn last line (a write that never completed) and starts from a whole snapshot', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/kept', 'yes');
    const image = crashImage(dir);
    appendFileSync(journalFile(image), '{"j":1,"r":2,"g":[[2,[["/torn"');
    const again = await openStore(image);
    expect((await again.get('/kept'))?.value).toBe('yes');
    expect(await again.get('/torn')).toBeUndefined();
    expect(await again.revision()).toBe(1);
    // Folded at open: an older release, reading only the snapshot, sees the same state.
    expect(statSync(journalFile(image)).size).toBe(0);
    expect(JSON.parse(readFileSync(stateFile(image), 'utf8')).revision).toBe(1);
  });

  it('refuses a damaged line before the last instead of starting without what follows it', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/a', 1);
    const image = crashImage(dir);
    const lines = readFileSync(journalFile(image), 'utf8');
    writeFileSync(journalFile(image), `not json\n${lines}`);
    await expect(FileStore.open({ dir: image })).rejects.toThrow(/journal.jsonl line 1 is damaged/);
    expect(readFileSync(journalFile(image), 'utf8')).toBe(`not json\n${lines}`);
  });

  it("ignores the lines of an older snapshot's journal (a crash before it was emptied)", async () => {
    const dir = newDir();
    const store = await openStore(dir, { journalCompactBytes: 300 });
    await store.put('/a', 'first');
    const before = readFileSync(journalFile(dir), 'utf8');
    for (let i = 0; i < 10; i++) await store.put('/a', `v${i}`);
    await store.delete('/a');
    const image = crashImage(dir);
    // The snapshot was replaced, but the journal still holds the lines it already folded in.
    writeFileSync(journalFile(image), before + readFileSync(journalFile(image), 'utf8'));
    const again = await openStore(image);
    expect(await again.get('/a')).toBeUndefined();
    expect(await again.revision()).toBe(await store.revision());
  });

  it('leaves the whole state in the snapshot file after a clean close', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await store.put('/a', 1);
    await store.close();
    rmSync(journalFile(dir)); // what a release without journals reads: the snapshot alone
    const again = await openStore(dir);
    expect((await again.get('/a'))?.value).toBe(1);
  });

  it('refuses a compaction bound that is not a whole number of bytes', async () => {
    await expect(FileStore.open({ dir: newDir(), journalCompactBytes: -1 })).rejects.toThrow(
      'journalCompactBytes must be a whole number of bytes',
    );
  });
});

describe('watch', () => {
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

  it('keeps a lease kept alive well past its TTL, and expires it one sweep after it stops', async () => {
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
