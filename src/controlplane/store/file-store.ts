// The embedded store: a snapshot of the whole state as one JSON file in the data directory,
// replaced crash-safely (write a temp file, fsync it, rename it over the old one, fsync the
// directory), and a journal of what changed since (./file-journal.ts), appended and fsynced.
// Transactions apply to an in-memory working copy at once (so compare-and-swap sees every
// earlier transaction) and are acknowledged, made visible to readers and sent to watchers only
// after the write holding them is durable. Transactions that arrive while a write is in flight
// share the next write, so a burst costs one or two writes, not one per change. A write is a
// journal line unless the journal has grown to the snapshot's size: then a new snapshot, and the
// journal starts empty (the cost of a write stays proportional to what changed). Opening and a
// clean close leave the state in the snapshot alone. etcd takes over beyond one process.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../../errors.js';
import { acquireDirLock, type DirLock } from './dir-lock.js';
import {
  encodeRecord,
  JournalFile,
  type JournalGroup,
  type JournalRecord,
  parseJournal,
} from './file-journal.js';
import {
  type ChangeLog,
  deleteRequest,
  type KeyChange,
  type ListResult,
  putRequest,
  type Store,
  StoreCompactedError,
  type StoreEntry,
  type StoreEvent,
  type TxnRequest,
  type TxnResult,
  type Watch,
  type WatchBatch,
  type WatchHandlers,
} from './store.js';

export interface FileStoreOptions {
  /** Directory of the state file (created 0700). */
  dir: string;
  /** Events kept for watch() replay (default 100,000). */
  historyEvents?: number;
  /** How often expired leases are collected (default 250 ms). */
  leaseCheckMs?: number;
  /** Key changes kept (and persisted) for changes() (default 20,000). */
  changeLogSize?: number;
  /**
   * Journal size (bytes) beyond which the next write is a new snapshot instead (default: the
   * last snapshot's size, at least 1 MiB).
   */
  journalCompactBytes?: number;
}

const STATE_FILE = 'state.json';
const JOURNAL_FILE = 'journal.jsonl';
const MIN_COMPACT_BYTES = 1024 * 1024;
const TEMP_SUFFIX = '.tmp';
const FORMAT = 'weft-store/1';

interface PersistedState {
  format: string;
  revision: number;
  leases: Array<[string, number]>;
  entries: Array<StoreEntry>;
  /** The change log: from, then [revision, key, 1 = put | 0 = delete] oldest first. */
  changeLog?: { from: number; changes: Array<[number, string, 0 | 1]> };
  /** Its generation: the journal lines written after it carry it (absent before journals). */
  journal?: number;
}

interface Pending {
  revision: number;
  events: StoreEvent[];
  /** False for a barrier that only waits for earlier writes. */
  write: boolean;
  resolve(result: TxnResult): void;
  reject(err: Error): void;
}

interface Watcher {
  prefix: string;
  handlers: WatchHandlers;
  live: boolean;
}

/** A JSON-compatible deep copy: stored values never alias the caller's objects. */
function freezeCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export class FileStore implements Store {
  private readonly dir: string;
  private readonly historyEvents: number;
  private readonly changeLogSize: number;
  // Key-level changes of the working state (persisted with it); see changes().
  private changeLog: Array<[number, string, 0 | 1]> = [];
  private changeLogFrom = 0;
  private readonly lock: DirLock;
  // Working state: every accepted transaction, durable or not. Compares run against it.
  private working = new Map<string, StoreEntry>();
  private workingRevision = 0;
  private leases = new Map<string, number>(); // lease -> ttl ms (persisted)
  // Committed state: durable transactions only. Reads and watchers see this.
  private committed = new Map<string, StoreEntry>();
  private committedRevision = 0;
  private readonly leaseDeadlines = new Map<string, number>(); // lease -> expiry (memory only)
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private history: WatchBatch[] = [];
  private historyCount = 0;
  private historyStart = 1; // the oldest revision watch() can replay from
  private readonly watchers = new Set<Watcher>();
  private failure: Error | undefined;
  private closed = false;
  private readonly leaseTimer: NodeJS.Timeout;
  private journal: JournalFile | undefined;
  private readonly journalCompactBytes: number | undefined;
  private snapshotBytes = 0;
  private generation = 0; // the snapshot's, carried by the journal lines after it
  // Leases changed since the last write: the next journal line carries them all.
  private leasesDirty = false;

  private constructor(options: FileStoreOptions, lock: DirLock) {
    this.dir = options.dir;
    this.historyEvents = options.historyEvents ?? 100_000;
    this.changeLogSize = options.changeLogSize ?? 20_000;
    if (
      options.journalCompactBytes !== undefined &&
      !(Number.isInteger(options.journalCompactBytes) && options.journalCompactBytes >= 0)
    )
      throw new WeftError(
        'WEFT_E_INTERNAL',
        `journalCompactBytes must be a whole number of bytes, got ${options.journalCompactBytes}`,
      );
    this.journalCompactBytes = options.journalCompactBytes;
    this.lock = lock;
    this.leaseTimer = setInterval(() => this.expireLeases(), options.leaseCheckMs ?? 250);
    this.leaseTimer.unref();
  }

  /** Opens (or creates) the store in dir; one process at a time (a lock file enforces it). */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const lock = acquireDirLock(options.dir);
    let store: FileStore | undefined;
    try {
      store = new FileStore(options, lock);
      await store.load();
      return store;
    } catch (err) {
      clearInterval(store?.leaseTimer);
      await store?.journal?.close();
      lock.release();
      throw err;
    }
  }

  private async load(): Promise<void> {
    // A temp file is a write that never completed its rename: the state file before it is the
    // last durable state, so the leftover is dropped.
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(TEMP_SUFFIX)) await unlink(join(this.dir, name));
    }
    const state = await this.readSnapshot();
    if (state !== undefined) {
      for (const entry of state.entries) this.committed.set(entry.key, entry);
      this.committedRevision = state.revision;
      this.changeLog = state.changeLog?.changes ?? [];
      this.changeLogFrom = state.changeLog?.from ?? state.revision;
      for (const [lease, ttl] of state.leases) this.leases.set(lease, ttl);
      this.generation = state.journal ?? 0;
    }
    const journalPath = join(this.dir, JOURNAL_FILE);
    let journalText = '';
    try {
      journalText = await readFile(journalPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new WeftError(
          'WEFT_E_STORE',
          `cannot read ${journalPath}: ${(err as Error).message}`,
        );
    }
    for (const record of parseJournal(journalText, this.generation, journalPath))
      this.replay(record);
    this.working = new Map(this.committed);
    this.workingRevision = this.committedRevision;
    this.historyStart = this.committedRevision + 1;
    const now = Date.now();
    for (const [lease, ttl] of this.leases) this.leaseDeadlines.set(lease, now + ttl);
    this.journal = await JournalFile.open(journalPath);
    // Folded into a fresh snapshot: the journal then holds no torn tail to append after, and
    // the snapshot alone is the whole state (what `controlplane migrate` and an older release
    // read).
    if (state === undefined || this.journal.bytes > 0) await this.compact();
  }

  private async readSnapshot(): Promise<PersistedState | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.dir, STATE_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new WeftError(
        'WEFT_E_STORE',
        `cannot read ${join(this.dir, STATE_FILE)}: ${(err as Error).message}`,
      );
    }
    try {
      const state = JSON.parse(text) as PersistedState;
      if (state.format !== FORMAT)
        throw new Error(`unknown format ${JSON.stringify(state.format)}`);
      this.snapshotBytes = text.length;
      return state;
    } catch (err) {
      throw new WeftError(
        'WEFT_E_STORE',
        `${join(this.dir, STATE_FILE)} is not a weft store (${(err as Error).message}); restore it from a backup or move it away to start empty`,
      );
    }
  }

  /** One journal line onto the committed state, as the writes it holds were applied. */
  private replay(record: JournalRecord): void {
    for (const [revision, ops] of record.g) {
      const events: StoreEvent[] = [];
      for (const op of ops) {
        const prev = this.committed.get(op[0]);
        if (op.length === 2) {
          this.committed.set(op[0], op[1]);
          events.push({ type: 'put', key: op[0], entry: op[1] });
        } else if (prev !== undefined) {
          this.committed.delete(op[0]);
          events.push({ type: 'delete', key: op[0], entry: prev });
        }
      }
      this.logChanges(revision, events);
    }
    if (record.l !== undefined) this.leases = new Map(record.l);
    this.committedRevision = record.r;
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new WeftError('WEFT_E_STORE', 'the store is closed');
  }

  async get<T = unknown>(key: string): Promise<StoreEntry<T> | undefined> {
    this.check();
    return this.committed.get(key) as StoreEntry<T> | undefined;
  }

  async list<T = unknown>(prefix: string): Promise<ListResult<T>> {
    this.check();
    const entries: StoreEntry<T>[] = [];
    for (const [key, entry] of this.committed)
      if (key.startsWith(prefix)) entries.push(entry as StoreEntry<T>);
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { entries, revision: this.committedRevision };
  }

  async revision(): Promise<number> {
    this.check();
    return this.committedRevision;
  }

  txn(request: TxnRequest): Promise<TxnResult> {
    try {
      this.check();
      return this.apply(request);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  put(
    key: string,
    value: unknown,
    options: { prevModRevision?: number; lease?: string } = {},
  ): Promise<TxnResult> {
    return this.txn(putRequest(key, value, options));
  }

  delete(key: string, options: { prevModRevision?: number } = {}): Promise<TxnResult> {
    return this.txn(deleteRequest(key, options));
  }

  private apply(request: TxnRequest): Promise<TxnResult> {
    const keys = new Set<string>();
    for (const op of request.ops) {
      if (keys.has(op.key))
        throw new WeftError('WEFT_E_INTERNAL', `store transaction changes ${op.key} twice`);
      keys.add(op.key);
      if (op.type === 'put' && op.lease !== undefined && !this.leases.has(op.lease)) {
        throw new WeftError(
          'WEFT_E_STORE',
          `lease ${op.lease} does not exist (expired or revoked)`,
        );
      }
    }
    const holds = (request.compares ?? []).every(
      (c) => (this.working.get(c.key)?.modRevision ?? 0) === c.modRevision,
    );
    // A failed compare, or a transaction that changes nothing, is answered once everything
    // before it is durable, so that a caller re-reading after it sees what it conflicted with.
    if (!holds) return this.afterDurable({ succeeded: false, revision: this.workingRevision });
    const revision = this.workingRevision + 1;
    const events: StoreEvent[] = [];
    for (const op of request.ops) {
      const prev = this.working.get(op.key);
      if (op.type === 'delete') {
        if (prev === undefined) continue;
        this.working.delete(op.key);
        events.push({ type: 'delete', key: op.key, entry: prev });
      } else {
        const entry: StoreEntry = {
          key: op.key,
          value: freezeCopy(op.value),
          createRevision: prev?.createRevision ?? revision,
          modRevision: revision,
          version: (prev?.version ?? 0) + 1,
        };
        if (op.lease !== undefined) entry.lease = op.lease;
        this.working.set(op.key, entry);
        events.push({ type: 'put', key: op.key, entry });
      }
    }
    if (events.length === 0)
      return this.afterDurable({ succeeded: true, revision: this.workingRevision });
    this.workingRevision = revision;
    this.logChanges(revision, events);
    return this.enqueue(revision, events, true);
  }

  private logChanges(revision: number, events: StoreEvent[]): void {
    for (const e of events) this.changeLog.push([revision, e.key, e.type === 'put' ? 1 : 0]);
    // Whole revisions are dropped, so that `from` is exact.
    while (this.changeLog.length > this.changeLogSize) {
      const dropped = this.changeLog[0]![0];
      while (this.changeLog.length > 0 && this.changeLog[0]![0] === dropped) this.changeLog.shift();
      this.changeLogFrom = dropped;
    }
  }

  async changes(prefix: string): Promise<ChangeLog> {
    this.check();
    const changes: KeyChange[] = [];
    for (const [revision, key, put] of this.changeLog) {
      if (revision > this.committedRevision) break;
      if (key.startsWith(prefix))
        changes.push({ revision, key, type: put === 1 ? 'put' : 'delete' });
    }
    return {
      from: Math.min(this.changeLogFrom, this.committedRevision),
      to: this.committedRevision,
      changes,
    };
  }

  private afterDurable(result: TxnResult): Promise<TxnResult> {
    if (this.queue.length === 0 && this.flushing === undefined) return Promise.resolve(result);
    return this.enqueue(-1, [], false).then(() => result);
  }

  private enqueue(revision: number, events: StoreEvent[], write: boolean): Promise<TxnResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ revision, events, write, resolve, reject });
      if (this.flushing === undefined) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    // Yield first: a batch with nothing to write runs no await, and the loop must not end (and
    // clear `flushing`) before enqueue() has stored its promise there.
    await undefined;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      // Serialized now, synchronously: the write holds exactly the transactions in `batch`.
      const line = batch.some((p) => p.write) ? this.journalLine(batch) : undefined;
      const snapshot =
        line !== undefined && this.journalFull(line.length) ? this.serialize() : undefined;
      try {
        if (snapshot !== undefined) await this.writeSnapshot(snapshot);
        else if (line !== undefined) await this.journal!.append(line);
      } catch (err) {
        this.fail(
          new WeftError(
            'WEFT_E_STORE',
            `cannot write the store in ${this.dir}: ${(err as Error).message}`,
          ),
          batch,
        );
        return;
      }
      const committedAt = Date.now();
      for (const pending of batch) this.commit(pending, committedAt);
    }
    this.flushing = undefined;
  }

  /** The batch's changes as one journal line; undefined when it changed nothing durable. */
  private journalLine(batch: Pending[]): string | undefined {
    const groups: JournalGroup[] = [];
    for (const p of batch) {
      if (p.events.length === 0) continue;
      groups.push([
        p.revision,
        p.events.map((e) => (e.type === 'put' ? [e.key, e.entry] : [e.key])),
      ]);
    }
    if (groups.length === 0 && !this.leasesDirty) return undefined;
    const record: JournalRecord = { j: this.generation, r: this.workingRevision, g: groups };
    if (this.leasesDirty) record.l = [...this.leases];
    this.leasesDirty = false;
    return encodeRecord(record);
  }

  /** Whether a write of `lineBytes` more should be a new snapshot instead. */
  private journalFull(lineBytes: number): boolean {
    const limit = this.journalCompactBytes ?? Math.max(MIN_COMPACT_BYTES, this.snapshotBytes);
    return this.journal!.bytes + lineBytes > limit;
  }

  /** The whole working state as the new snapshot, and an empty journal after it. */
  private async compact(): Promise<void> {
    this.leasesDirty = false;
    await this.writeSnapshot(this.serialize());
  }

  private async writeSnapshot(text: string): Promise<void> {
    await this.writeDurably(text);
    this.generation += 1; // serialize() wrote the next one
    this.snapshotBytes = text.length;
    await this.journal!.clear();
  }

  private serialize(): string {
    const state: PersistedState = {
      format: FORMAT,
      revision: this.workingRevision,
      leases: [...this.leases],
      entries: [...this.working.values()],
      changeLog: { from: this.changeLogFrom, changes: this.changeLog },
      journal: this.generation + 1,
    };
    return JSON.stringify(state);
  }

  private async writeDurably(text: string): Promise<void> {
    const target = join(this.dir, STATE_FILE);
    const temp = `${target}${TEMP_SUFFIX}`;
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, target);
    // The rename is durable only once the directory entry is.
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private commit(pending: Pending, committedAt: number): void {
    if (pending.events.length > 0) {
      for (const event of pending.events) {
        if (event.type === 'put') this.committed.set(event.key, event.entry);
        else this.committed.delete(event.key);
      }
      this.committedRevision = pending.revision;
      const batch: WatchBatch = { revision: pending.revision, events: pending.events, committedAt };
      this.remember(batch);
      for (const watcher of this.watchers) if (watcher.live) this.deliver(watcher, batch);
    }
    pending.resolve({
      succeeded: true,
      revision: pending.revision > 0 ? pending.revision : this.committedRevision,
    });
  }

  private remember(batch: WatchBatch): void {
    this.history.push(batch);
    this.historyCount += batch.events.length;
    while (this.historyCount > this.historyEvents && this.history.length > 1) {
      const dropped = this.history.shift()!;
      this.historyCount -= dropped.events.length;
      this.historyStart = this.history[0]!.revision;
    }
  }

  private fail(err: Error, batch: Pending[]): void {
    this.failure = err;
    for (const pending of [...batch, ...this.queue]) pending.reject(err);
    this.queue = [];
    this.flushing = undefined;
    for (const watcher of [...this.watchers]) this.endWatch(watcher, err);
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    const watcher: Watcher = { prefix, handlers, live: false };
    this.watchers.add(watcher);
    // Replay and go live in one step, later: handlers never run inside watch() itself, and no
    // batch can slip between the replay and the live feed.
    queueMicrotask(() => {
      if (!this.watchers.has(watcher)) return;
      if (this.failure !== undefined || this.closed)
        return this.endWatch(
          watcher,
          this.failure ?? new WeftError('WEFT_E_STORE', 'the store is closed'),
        );
      if (fromRevision < this.historyStart && fromRevision <= this.committedRevision) {
        return this.endWatch(watcher, new StoreCompactedError(fromRevision, this.historyStart));
      }
      for (const batch of this.history)
        if (batch.revision >= fromRevision) this.deliver(watcher, batch);
      watcher.live = true;
    });
    return { cancel: () => this.watchers.delete(watcher) };
  }

  private deliver(watcher: Watcher, batch: WatchBatch): void {
    const events = batch.events.filter((e) => e.key.startsWith(watcher.prefix));
    if (events.length === 0 || !this.watchers.has(watcher)) return;
    try {
      watcher.handlers.onBatch(
        events.length === batch.events.length ? batch : { ...batch, events },
      );
    } catch (err) {
      this.endWatch(watcher, err instanceof Error ? err : new Error(String(err)));
    }
  }

  private endWatch(watcher: Watcher, err: Error): void {
    if (!this.watchers.delete(watcher)) return;
    watcher.handlers.onError?.(err);
  }

  async grantLease(ttlMs: number): Promise<string> {
    this.check();
    if (!(ttlMs >= 1))
      throw new WeftError('WEFT_E_INTERNAL', `lease TTL must be positive, got ${ttlMs}`);
    const lease = randomBytes(8).toString('hex');
    this.leases.set(lease, ttlMs);
    this.leaseDeadlines.set(lease, Date.now() + ttlMs);
    this.leasesDirty = true;
    await this.enqueue(-1, [], true); // the lease itself must be durable before keys use it
    return lease;
  }

  async keepAlive(lease: string): Promise<boolean> {
    this.check();
    const ttl = this.leases.get(lease);
    if (ttl === undefined) return false;
    this.leaseDeadlines.set(lease, Date.now() + ttl);
    return true;
  }

  async leaseTimeToLive(
    lease: string,
  ): Promise<{ ttlMs: number; remainingMs: number } | undefined> {
    this.check();
    const ttlMs = this.leases.get(lease);
    const deadline = this.leaseDeadlines.get(lease);
    if (ttlMs === undefined || deadline === undefined) return undefined;
    return { ttlMs, remainingMs: Math.max(0, deadline - Date.now()) };
  }

  async revokeLease(lease: string): Promise<void> {
    this.check();
    if (!this.leases.has(lease)) return;
    const ops = [...this.working.values()]
      .filter((e) => e.lease === lease)
      .map((e) => ({ type: 'delete' as const, key: e.key }));
    this.leases.delete(lease);
    this.leaseDeadlines.delete(lease);
    this.leasesDirty = true;
    await this.apply({ ops });
    // Persist the lease's removal even when no key used it.
    await this.enqueue(-1, [], true);
  }

  private expireLeases(): void {
    if (this.failure !== undefined || this.closed) return;
    const now = Date.now();
    for (const [lease, deadline] of this.leaseDeadlines) {
      if (deadline <= now) this.revokeLease(lease).catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.leaseTimer);
    if (this.flushing !== undefined) await this.flushing;
    // The snapshot alone then holds the whole state: an older release reads only that file.
    if (this.failure === undefined && this.journal !== undefined && this.journal.bytes > 0)
      await this.compact().catch(() => {}); // the journal still holds it all: nothing is lost
    await this.journal?.close();
    this.closed = true;
    for (const watcher of [...this.watchers])
      this.endWatch(watcher, new WeftError('WEFT_E_STORE', 'the store is closed'));
    this.lock.release();
  }
}
