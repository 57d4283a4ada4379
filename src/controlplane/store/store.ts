// The control plane's state store: what every implementation (embedded file store today, etcd
// later) promises its callers. The model is etcd's, so that an etcd-backed store is a thin
// adapter and callers never change:
//
// - Keys are strings ("/resources/Service/echo"); values are JSON-compatible objects, treated
//   as immutable once stored (callers build new objects instead of mutating).
// - One global revision counts every committed transaction (monotonic, starts at 0 when empty).
//   Each entry records the revision that created it (createRevision) and last changed it
//   (modRevision); a transaction's compares on modRevision give compare-and-swap (modRevision 0
//   means "the key must not exist").
// - A transaction is atomic: all its compares hold and all its operations commit at one new
//   revision, or nothing changes (succeeded = false). It resolves only once the change is
//   durable; readers and watchers never see a change before that.
// - watch(prefix, fromRevision) replays the committed changes with revision >= fromRevision,
//   then follows live ones, one batch per transaction, in revision order. History is bounded:
//   asking for a revision older than what is kept fails with StoreCompactedError (as etcd's
//   compaction does) and the caller starts again from list().
// - changes(prefix) tells which keys changed in which revision, without values, as far back as
//   the store remembers, and across restarts (etcd keeps its history until compaction; the
//   file store persists a bounded log). It lets a restarted control plane send agents a delta
//   from the version they hold instead of a full snapshot.
// - Leases are etcd's: a lease has a TTL, keepAlive() pushes its expiry out, and when it
//   expires (or is revoked) every key attached to it is deleted in one transaction. Lease
//   deadlines after a restart start again from the full TTL, as etcd does after leader change.
//   leaseTimeToLive() tells what is left, so that replicas sharing a store know when a lease's
//   holder was last heard from by any of them.
import { WeftError } from '../../errors.js';

export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue | undefined };

export interface StoreEntry<T = unknown> {
  key: string;
  value: T;
  createRevision: number;
  modRevision: number;
  /** Number of writes since creation (1 on create). */
  version: number;
  /** The lease the key is attached to, if any. */
  lease?: string;
}

export type StoreOp =
  | { type: 'put'; key: string; value: unknown; lease?: string }
  | { type: 'delete'; key: string };

/** The key's modRevision must equal this; 0: the key must not exist. */
export interface StoreCompare {
  key: string;
  modRevision: number;
}

export interface TxnRequest {
  compares?: StoreCompare[];
  ops: StoreOp[];
}

/** Store.put as a transaction: compare-and-swap when prevModRevision is given. */
export function putRequest(
  key: string,
  value: unknown,
  options: { prevModRevision?: number; lease?: string },
): TxnRequest {
  return {
    compares: compareOn(key, options),
    ops: [{ type: 'put', key, value, lease: options.lease }],
  };
}

/** Store.delete as a transaction: compare-and-swap when prevModRevision is given. */
export function deleteRequest(key: string, options: { prevModRevision?: number }): TxnRequest {
  return { compares: compareOn(key, options), ops: [{ type: 'delete', key }] };
}

function compareOn(key: string, options: { prevModRevision?: number }): StoreCompare[] {
  return options.prevModRevision === undefined
    ? []
    : [{ key, modRevision: options.prevModRevision }];
}

export interface TxnResult {
  succeeded: boolean;
  /** The new revision when it succeeded; the current one when a compare failed. */
  revision: number;
}

export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** The entry after a put; the entry as it was before a delete. */
  entry: StoreEntry;
}

/** The committed changes of one transaction (those under the watched prefix). */
export interface WatchBatch {
  revision: number;
  events: StoreEvent[];
  /** When the store committed it (ms since epoch): lets watchers measure propagation. */
  committedAt: number;
}

export interface WatchHandlers {
  onBatch(batch: WatchBatch): void;
  /** The watch ended (compacted history, store closed or failed); no batch follows. */
  onError?(err: Error): void;
}

export interface Watch {
  cancel(): void;
}

export interface KeyChange {
  revision: number;
  key: string;
  type: 'put' | 'delete';
}

/** Every change under a prefix in revisions (from, to], oldest first. */
export interface ChangeLog {
  /** Nothing before or at this revision is known (0: the store's whole life). */
  from: number;
  /** The current revision. */
  to: number;
  changes: KeyChange[];
}

export interface ListResult<T = unknown> {
  entries: StoreEntry<T>[];
  /** The revision the list reflects: watch from revision + 1 to follow it. */
  revision: number;
}

/** Whether a store that lives elsewhere (etcd) can be reached now; the file store has none. */
export interface StoreHealth {
  /** Undefined while the store answers; else why it cannot (for /readyz and refusals). */
  problem(): string | undefined;
  /** Called when the store becomes unreachable (with why) or reachable again (undefined). */
  onChange(listener: (problem: string | undefined) => void): () => void;
}

export interface Store {
  /** Present when the store can become unreachable while the control plane runs. */
  readonly health?: StoreHealth;
  get<T = unknown>(key: string): Promise<StoreEntry<T> | undefined>;
  /** Every entry whose key starts with prefix, sorted by key. */
  list<T = unknown>(prefix: string): Promise<ListResult<T>>;
  txn(request: TxnRequest): Promise<TxnResult>;
  /** Shorthands for one-key transactions; prevModRevision makes them compare-and-swap. */
  put(
    key: string,
    value: unknown,
    options?: { prevModRevision?: number; lease?: string },
  ): Promise<TxnResult>;
  delete(key: string, options?: { prevModRevision?: number }): Promise<TxnResult>;
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch;
  /** Which keys under prefix changed, revision by revision, as far back as remembered. */
  changes(prefix: string): Promise<ChangeLog>;
  /** A new lease; keys put with it are deleted when it expires. */
  grantLease(ttlMs: number): Promise<string>;
  /** Pushes the lease's expiry out by its TTL; false when the lease no longer exists. */
  keepAlive(lease: string): Promise<boolean>;
  /** Deletes the lease and its keys now. */
  revokeLease(lease: string): Promise<void>;
  /**
   * The lease's TTL and what is left of it (undefined once it is gone). Every replica sharing
   * the store sees the same: ttlMs - remainingMs tells how long ago it was last kept alive,
   * whichever replica did it (to about a second on etcd, which counts in whole seconds).
   */
  leaseTimeToLive(lease: string): Promise<{ ttlMs: number; remainingMs: number } | undefined>;
  /** The latest committed revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}

/** watch() asked for history the store no longer keeps: re-list and watch from there. */
export class StoreCompactedError extends WeftError {
  readonly compactRevision: number;

  constructor(fromRevision: number, compactRevision: number) {
    super(
      'WEFT_E_STORE',
      `store history from revision ${fromRevision} is compacted (oldest kept: ${compactRevision})`,
    );
    this.compactRevision = compactRevision;
  }
}
