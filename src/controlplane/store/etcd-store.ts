// The store on etcd, for control planes that run as several replicas: the Store contract maps
// one to one onto etcd's (store.ts). Keys live under a prefix ("/weft/" by default), values are
// JSON, revisions are etcd's, a transaction is one etcd Txn comparing mod_revision, leases are
// etcd leases, watches are etcd watches (etcd-watch.ts), and changes() reads etcd's history.
// Revisions count every write to the etcd cluster, weft's or not: callers only compare them.
import type { IKeyValue, IRequestOp } from 'etcd3';
import { WeftError } from '../../errors.js';
import { connectEtcd, type EtcdConnection, type EtcdConnectOptions } from './etcd-connect.js';
import { EtcdHealth } from './etcd-health.js';
import { EtcdKeepAlives } from './etcd-keepalive.js';
import { EtcdWatch } from './etcd-watch.js';
import { MIGRATION_KEY } from './keys.js';
import {
  type ChangeLog,
  deleteRequest,
  type KeyChange,
  type ListResult,
  putRequest,
  type Store,
  type StoreEntry,
  type TxnRequest,
  type TxnResult,
  type Watch,
  type WatchHandlers,
} from './store.js';

export interface EtcdStoreOptions extends EtcdConnectOptions {
  /** How many revisions back changes() reads etcd's history (default 20,000). */
  changeLogRevisions?: number;
}

/** How long changes() may take to read etcd's history before it fails. */
const HISTORY_TIMEOUT_MS = 60_000;

/** Entries read per range request when listing (one revision for all pages). */
const LIST_PAGE = 1_000;

/** The first key after every key that starts with prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

export class EtcdStore implements Store {
  private readonly conn: EtcdConnection;
  private readonly changeLogRevisions: number;
  private readonly watches = new Set<EtcdWatch>();
  private readonly keepAlives: EtcdKeepAlives;
  private closed = false;
  /** Probes etcd; while it is unreachable every request is refused at once (call()). */
  readonly health: EtcdHealth;

  private constructor(conn: EtcdConnection, changeLogRevisions: number) {
    this.conn = conn;
    this.changeLogRevisions = changeLogRevisions;
    this.keepAlives = new EtcdKeepAlives(conn.client, conn.requestTimeoutMs);
    this.health = new EtcdHealth({
      name: `etcd (${conn.endpoints.join(',')})`,
      probe: (deadlineMs) => this.probe(deadlineMs),
    });
  }

  /** One linearizable read with its own short deadline: it needs a member with a leader. */
  private async probe(deadlineMs: number): Promise<void> {
    const key = Buffer.from(`${this.conn.root}/`);
    await this.conn.client.kv.range(
      { key, range_end: prefixEnd(key), count_only: true },
      { deadline: Date.now() + deadlineMs },
    );
  }

  /** Checks the options, connects, and reads the revision once: etcd must answer. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const revisions = options.changeLogRevisions ?? 20_000;
    if (!(Number.isInteger(revisions) && revisions >= 1))
      throw new WeftError(
        'WEFT_E_CONFIG',
        'etcd store: changeLogRevisions: must be a positive integer',
      );
    const store = new EtcdStore(connectEtcd(options), revisions);
    try {
      await store.revision();
    } catch (err) {
      store.conn.client.close();
      throw err;
    }
    store.health.start();
    return store;
  }

  /** Where this store keeps its keys ("/weft/"), for messages and tests. */
  get prefix(): string {
    return `${this.conn.root}/`;
  }

  private etcdKey(key: string): Buffer {
    if (!key.startsWith('/'))
      throw new WeftError(
        'WEFT_E_INTERNAL',
        `store keys start with "/", got ${JSON.stringify(key)}`,
      );
    return Buffer.from(this.conn.root + key);
  }

  private toEntry = (kv: IKeyValue): StoreEntry => {
    const text = kv.value.toString('utf8');
    const entry: StoreEntry = {
      key: kv.key.toString('utf8').slice(this.conn.root.length),
      value: text === '' ? null : JSON.parse(text),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
    };
    if (kv.lease !== undefined && kv.lease !== '0') entry.lease = String(kv.lease);
    return entry;
  };

  /** Runs one request to etcd; its failure becomes a WEFT_E_STORE naming etcd. */
  private async call<T>(what: string, request: () => Promise<T>): Promise<T> {
    if (this.closed) throw new WeftError('WEFT_E_STORE', 'the store is closed');
    const problem = this.health.problem();
    if (problem !== undefined)
      // At once, not after the request's deadline: the caller hears why, and nothing changed.
      throw new WeftError(
        'WEFT_E_STORE',
        `cannot ${what}: this control plane replica finds ${problem}; nothing was changed: retry once etcd answers again (the replica's /readyz tells), or through another replica`,
      );
    try {
      return await request();
    } catch (err) {
      if (err instanceof WeftError) throw err;
      throw new WeftError(
        'WEFT_E_STORE',
        `etcd (${this.conn.endpoints.join(',')}) failed to ${what}: ${(err as Error).message}`,
      );
    }
  }

  async get<T = unknown>(key: string): Promise<StoreEntry<T> | undefined> {
    const res = await this.call(`read ${key}`, () =>
      this.conn.client.kv.range({ key: this.etcdKey(key) }),
    );
    const kv = res.kvs[0];
    return kv === undefined ? undefined : (this.toEntry(kv) as StoreEntry<T>);
  }

  async list<T = unknown>(prefix: string): Promise<ListResult<T>> {
    const start = this.etcdKey(prefix);
    const end = prefixEnd(start);
    const entries: StoreEntry<T>[] = [];
    let revision = 0;
    let from = start;
    for (;;) {
      const res = await this.call(`list ${prefix}`, () =>
        this.conn.client.kv.range({
          key: from,
          range_end: end,
          limit: LIST_PAGE,
          // Every page at the first page's revision: the list is one consistent snapshot.
          ...(revision > 0 ? { revision } : {}),
        }),
      );
      if (revision === 0) revision = Number(res.header.revision);
      for (const kv of res.kvs) entries.push(this.toEntry(kv) as StoreEntry<T>);
      const last = res.kvs.at(-1);
      if (!res.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { entries, revision };
  }

  async revision(): Promise<number> {
    // Read within the prefix: etcd RBAC may grant weft nothing else.
    const key = Buffer.from(`${this.conn.root}/`);
    const res = await this.call('read the revision', () =>
      this.conn.client.kv.range({ key, range_end: prefixEnd(key), count_only: true }),
    );
    return Number(res.header.revision);
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const keys = new Set<string>();
    const ops: IRequestOp[] = [];
    for (const op of request.ops) {
      if (keys.has(op.key))
        throw new WeftError('WEFT_E_INTERNAL', `store transaction changes ${op.key} twice`);
      keys.add(op.key);
      if (op.type === 'delete') {
        ops.push({ request_delete_range: { key: this.etcdKey(op.key) } });
        continue;
      }
      const text = JSON.stringify(op.value);
      if (text === undefined)
        throw new WeftError('WEFT_E_INTERNAL', `store value of ${op.key} is not JSON`);
      ops.push({
        request_put: {
          key: this.etcdKey(op.key),
          value: Buffer.from(text),
          ...(op.lease !== undefined ? { lease: op.lease } : {}),
        },
      });
    }
    const compare = (request.compares ?? []).map((c) => ({
      key: this.etcdKey(c.key),
      target: 'Mod' as const,
      result: 'Equal' as const,
      // etcd compares a missing key as mod_revision 0: "must not exist", as the contract says.
      mod_revision: c.modRevision,
    }));
    const leaseOf = request.ops.find((op) => op.type === 'put' && op.lease !== undefined);
    const res = await this.call('commit a transaction', async () => {
      try {
        return await this.conn.client.kv.txn({ compare, success: ops, failure: [] });
      } catch (err) {
        if (/too many operations in txn request/.test((err as Error).message))
          // etcd's --max-txn-ops (128 by default) bounds a transaction, and an apply is one
          // transaction (all or nothing): a new Service takes two operations (it and its VIP).
          throw new WeftError(
            'WEFT_E_STORE',
            `etcd refused a transaction of ${ops.length} writes and ${compare.length} checks: each etcd member allows at most its --max-txn-ops (128 by default) of either; nothing was changed: apply fewer documents at once (at most 64 new Services), or raise --max-txn-ops on every etcd member`,
          );
        if (/lease not found/.test((err as Error).message) && leaseOf?.type === 'put')
          throw new WeftError(
            'WEFT_E_STORE',
            `lease ${leaseOf.lease} does not exist (expired or revoked)`,
          );
        throw err;
      }
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
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

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    const key = this.etcdKey(prefix);
    let watch: EtcdWatch | undefined;
    if (this.closed) {
      queueMicrotask(() =>
        handlers.onError?.(new WeftError('WEFT_E_STORE', 'the store is closed')),
      );
      return { cancel: () => {} };
    }
    watch = new EtcdWatch(
      {
        client: this.conn.client,
        key,
        rangeEnd: prefixEnd(key),
        toEntry: this.toEntry,
        onEnd: () => {
          if (watch !== undefined) this.watches.delete(watch);
        },
      },
      fromRevision,
      handlers,
    );
    this.watches.add(watch);
    const w = watch;
    return { cancel: () => w.cancel() };
  }

  /**
   * Reads etcd's history of the last changeLogRevisions revisions (or back to its compaction).
   * etcd has no "changes without values" call, and says no "caught up" on a watch that replays
   * history; so the whole keyspace is watched from the start revision until the event of the
   * current revision arrives (every etcd revision but the first has at least one event), and
   * only the keys under prefix are kept.
   */
  async changes(prefix: string): Promise<ChangeLog> {
    const log = await this.changesInHistory(prefix);
    // After `weft controlplane migrate`, agents hold versions of the file store's history, not
    // etcd's: no revision up to the marker's historyAfter may serve as a delta's base.
    const floor = (await this.get<{ historyAfter?: number }>(MIGRATION_KEY))?.value.historyAfter;
    if (floor === undefined || floor <= log.from) return log;
    return { from: floor, to: log.to, changes: log.changes.filter((c) => c.revision > floor) };
  }

  private async changesInHistory(prefix: string): Promise<ChangeLog> {
    const to = await this.revision();
    const under = this.conn.root + prefix;
    let start = Math.max(2, to - this.changeLogRevisions + 1);
    if (start > to) return { from: to, to, changes: [] };
    for (;;) {
      const result = await this.call('read its history', () => this.history(start, to, under));
      // Not allowed to read the whole keyspace (etcd RBAC): no history, so no deltas across a
      // restart; agents get full snapshots instead.
      if (result.denied) return { from: to, to, changes: [] };
      if (result.compactedTo === undefined) return { from: start - 1, to, changes: result.changes };
      start = Math.max(start, result.compactedTo);
      if (start > to) return { from: to, to, changes: [] };
    }
  }

  private history(
    start: number,
    to: number,
    under: string,
  ): Promise<{ changes: KeyChange[]; compactedTo?: number; denied?: boolean }> {
    return new Promise((resolve, reject) => {
      const changes: KeyChange[] = [];
      this.conn.client.watchClient.watch().then((stream) => {
        let done = false;
        const finish = (err: Error | undefined, compactedTo?: number, denied?: boolean) => {
          if (done) return;
          done = true;
          clearTimeout(deadline);
          stream.on('error', () => {}); // the cancellation surfaces as an error
          stream.cancel();
          if (err !== undefined) reject(err);
          else resolve({ changes, compactedTo, denied });
        };
        const deadline = setTimeout(
          () =>
            finish(new Error(`no history up to revision ${to} within ${HISTORY_TIMEOUT_MS} ms`)),
          HISTORY_TIMEOUT_MS,
        );
        stream.on('error', (err: Error) => finish(err));
        stream.on('end', () => finish(new Error('the history stream ended early')));
        stream.on('data', (res) => {
          if (done) return;
          if (res.canceled) {
            const compacted = Number(res.compact_revision ?? 0);
            if (compacted > 0) return finish(undefined, compacted);
            if (/permission denied/.test(res.cancel_reason)) return finish(undefined, 0, true);
            return finish(new Error(`watch cancelled: ${res.cancel_reason}`));
          }
          let last = 0;
          for (const event of res.events) {
            const revision = Number(event.kv.mod_revision);
            last = revision;
            if (revision > to) continue;
            const key = event.kv.key.toString('utf8');
            if (!key.startsWith(under)) continue;
            changes.push({
              revision,
              key: key.slice(this.conn.root.length),
              type: event.type === 'Put' ? 'put' : 'delete',
            });
          }
          if (last >= to) finish(undefined);
        });
        stream.write({
          create_request: {
            key: Buffer.from([0]),
            range_end: Buffer.from([0]),
            start_revision: start,
          },
        });
      }, reject);
    });
  }

  async grantLease(ttlMs: number): Promise<string> {
    if (!(ttlMs >= 1))
      throw new WeftError('WEFT_E_INTERNAL', `lease TTL must be positive, got ${ttlMs}`);
    // etcd counts in whole seconds, and raises a TTL below its minimum (about 2 s) to it.
    const TTL = Math.max(1, Math.ceil(ttlMs / 1000));
    const res = await this.call('grant a lease', () =>
      this.conn.client.leaseClient.leaseGrant({ TTL, ID: 0 }),
    );
    if (res.error) throw new WeftError('WEFT_E_STORE', `etcd refused a lease: ${res.error}`);
    return String(res.ID);
  }

  async keepAlive(lease: string): Promise<boolean> {
    const ttl = await this.call('keep a lease alive', () => this.keepAlives.keepAlive(lease));
    // etcd answers TTL 0 for a lease it does not have (expired or revoked).
    return ttl > 0;
  }

  async leaseTimeToLive(
    lease: string,
  ): Promise<{ ttlMs: number; remainingMs: number } | undefined> {
    const res = await this.call('read a lease', () =>
      this.conn.client.leaseClient.leaseTimeToLive({ ID: lease, keys: false }),
    );
    // etcd answers TTL -1 for a lease it does not have; both counts are whole seconds.
    const remaining = Number(res.TTL);
    if (remaining < 0) return undefined;
    return { ttlMs: Number(res.grantedTTL) * 1000, remainingMs: remaining * 1000 };
  }

  async revokeLease(lease: string): Promise<void> {
    await this.call('revoke a lease', async () => {
      try {
        await this.conn.client.leaseClient.leaseRevoke({ ID: lease });
      } catch (err) {
        if (!/lease not found/.test((err as Error).message)) throw err;
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.stop();
    for (const watch of [...this.watches])
      watch.end(new WeftError('WEFT_E_STORE', 'the store is closed'));
    this.keepAlives.close();
    this.conn.client.close();
  }
}
