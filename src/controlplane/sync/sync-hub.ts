// The fan-out behind every sync stream. One store watch feeds one materialized view of what
// agents need (every resource under /resources/); changes are merged into batches, at most one
// per coalescing interval, and each batch is serialized once and the same bytes written to
// every stream that is up to date (compressed once more for the streams whose agent takes it:
// encoded-response.ts). Streams that fell behind (slow reader, rejected version, a
// reconnect) get one merged delta, or a full snapshot (also encoded once per version) when the
// history does not reach back to the version they hold.
//
// The history is kept as the keys each batch changed; a merged delta takes their values from
// the current view (a key that is gone is a removal). So the history can also be rebuilt from
// the store's change log at start, and agents reconnecting after a control plane restart get
// a delta (often an empty one) instead of a full snapshot.
import type { Logger } from 'pino';
import type { ResourceKey, ResourceMessage, SyncResponse } from '../../api/messages.js';
import type { Workload } from '../../api/resources/index.js';
import { withoutApplyId } from '../registry/apply-id.js';
import { RESOURCES_PREFIX, resourceIdOfKey } from '../store/keys.js';
import {
  type Store,
  StoreCompactedError,
  type StoreEntry,
  type Watch,
  type WatchBatch,
} from '../store/store.js';
import { EncodedResponse } from './encoded-response.js';

export interface SyncBatch {
  /** The version a stream must hold for this batch's encoding to apply. */
  base: number;
  version: number;
  /** The resources it changed, by "Kind/name". */
  changed: Map<string, ResourceKey>;
  /** When the oldest change in it was committed (for the latency metric). */
  committedAt: number;
  /** Its encoding, only while it is being offered. */
  encoded?: EncodedResponse;
}

export interface SyncSubscriber {
  /** A new batch; its base is the previous hub version. */
  offer(batch: SyncBatch): void;
  /** The history was lost: bring the stream up to date from scratch. */
  reset(): void;
}

export interface SyncHubOptions {
  store: Store;
  trustBundlePem: string;
  /** Minimum time between two batches. */
  coalesceMs: number;
  /** Serializes a SyncResponse (the Sync service's serializer). */
  encode(message: SyncResponse): Buffer;
  log: Logger;
  /** Changes kept for deltas to lagging streams (default 100,000). */
  historyChanges?: number;
}

interface Pending {
  version: number;
  upserts: Map<string, ResourceMessage>;
  removals: Map<string, ResourceKey>;
  committedAt: number;
}

const MAX_BATCHES = 4_096;
const LOAD_ATTEMPTS = 5;

export class SyncHub {
  /** The version streams are brought to: the store revision of the last change they need. */
  version = 0;
  private readonly options: SyncHubOptions;
  private readonly view = new Map<string, ResourceMessage>();
  /** Committed Workload entries by node, updated as soon as the store commits (not batched). */
  private readonly workloads = new Map<string, Map<string, StoreEntry<Workload>>>();
  private history: SyncBatch[] = [];
  private historyChangeCount = 0;
  /** Every change after this revision (up to knownRevision) is in the history. */
  private coveredFrom = 0;
  /** The newest store revision the hub has seen (irrelevant writes included, up to load). */
  private knownRevision = 0;
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPublishAt = 0;
  private fullCache: EncodedResponse | undefined;
  private readonly subscribers = new Set<SyncSubscriber>();
  private watch: Watch | undefined;
  private stopped = false;

  private constructor(options: SyncHubOptions) {
    this.options = options;
  }

  static async start(options: SyncHubOptions): Promise<SyncHub> {
    const hub = new SyncHub(options);
    await hub.load();
    return hub;
  }

  private async load(): Promise<void> {
    const { store } = this.options;
    for (let attempt = 0; attempt < LOAD_ATTEMPTS; attempt++) {
      const { entries, revision } = await store.list(RESOURCES_PREFIX);
      const log = await store.changes(RESOURCES_PREFIX);
      if (log.to !== revision) continue; // a write got in between: the two must agree
      this.view.clear();
      this.workloads.clear();
      for (const entry of entries) {
        const msg = toMessage(entry);
        this.view.set(idOf(msg), msg);
        this.indexWorkload(entry, 'put');
      }
      this.rebuildHistory(log.from, log.changes, revision);
      this.pending = undefined;
      this.fullCache = undefined;
      this.watch = store.watch(RESOURCES_PREFIX, revision + 1, {
        onBatch: (batch) => this.onStoreBatch(batch),
        onError: (err) => this.onWatchError(err),
      });
      return;
    }
    throw new Error('the store kept changing while the sync view was loaded');
  }

  /** Batches from the store's change log, one per revision. */
  private rebuildHistory(
    from: number,
    changes: ReadonlyArray<{ revision: number; key: string }>,
    revision: number,
  ): void {
    this.history = [];
    this.historyChangeCount = 0;
    let base = from;
    for (const change of changes) {
      let batch = this.history.at(-1);
      if (batch?.version !== change.revision) {
        batch = { base, version: change.revision, changed: new Map(), committedAt: 0 };
        this.history.push(batch);
        base = change.revision;
      }
      const { kind, name } = resourceIdOfKey(change.key);
      batch.changed.set(`${kind}/${name}`, { kind, name });
      this.historyChangeCount++;
    }
    this.coveredFrom = from;
    this.knownRevision = revision;
    this.version = this.history.at(-1)?.version ?? revision;
    this.trimHistory();
  }

  private onWatchError(err: Error): void {
    if (this.stopped) return;
    if (err instanceof StoreCompactedError) {
      this.options.log.warn(
        'sync view fell behind the store history; reloading it and resending full snapshots',
      );
      this.load()
        .then(() => {
          for (const s of this.subscribers) s.reset();
        })
        .catch((e: unknown) => this.options.log.error({ err: e }, 'cannot reload the sync view'));
      return;
    }
    this.options.log.error({ err }, 'the store watch behind the sync streams failed');
  }

  private onStoreBatch(batch: WatchBatch): void {
    this.pending ??= {
      version: 0,
      upserts: new Map(),
      removals: new Map(),
      committedAt: batch.committedAt,
    };
    const pending = this.pending;
    pending.version = batch.revision;
    for (const event of batch.events) {
      this.indexWorkload(event.entry, event.type);
      const { kind, name } = resourceIdOfKey(event.key);
      const id = `${kind}/${name}`;
      if (event.type === 'put') {
        pending.removals.delete(id);
        pending.upserts.set(id, toMessage(event.entry));
      } else {
        pending.upserts.delete(id);
        pending.removals.set(id, { kind, name });
      }
    }
    this.schedule();
  }

  private indexWorkload(entry: StoreEntry, type: 'put' | 'delete'): void {
    const doc = entry.value as Workload;
    if (doc.kind !== 'Workload') return;
    const node = doc.spec.node;
    let byName = this.workloads.get(node);
    if (type === 'put') {
      if (byName === undefined) {
        byName = new Map();
        this.workloads.set(node, byName);
      }
      byName.set(doc.metadata.name, entry as StoreEntry<Workload>);
    } else if (byName !== undefined) {
      byName.delete(doc.metadata.name);
      if (byName.size === 0) this.workloads.delete(node);
    }
  }

  /** Leading edge at once, then at most one batch per coalescing interval. */
  private schedule(): void {
    if (this.timer !== undefined || this.stopped) return;
    const wait = Math.max(0, this.lastPublishAt + this.options.coalesceMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.publish();
    }, wait);
  }

  private publish(): void {
    const pending = this.pending;
    if (pending === undefined || this.stopped) return;
    this.pending = undefined;
    const changed = new Map<string, ResourceKey>();
    for (const [id, msg] of pending.upserts) {
      this.view.set(id, msg);
      changed.set(id, { kind: msg.kind, name: msg.name });
    }
    for (const [id, key] of pending.removals) {
      this.view.delete(id);
      changed.set(id, key);
    }
    const batch: SyncBatch = {
      base: this.version,
      version: pending.version,
      changed,
      committedAt: pending.committedAt,
    };
    this.version = batch.version;
    this.knownRevision = Math.max(this.knownRevision, batch.version);
    this.history.push(batch);
    this.historyChangeCount += changed.size;
    this.trimHistory();
    this.lastPublishAt = Date.now();
    if (this.subscribers.size > 0) {
      // Serialized once here; every stream that holds batch.base gets these same bytes.
      batch.encoded = this.encodeChanges(batch.base, batch.version, changed);
      for (const subscriber of this.subscribers) subscriber.offer(batch);
      batch.encoded = undefined;
    }
  }

  private trimHistory(): void {
    const limit = this.options.historyChanges ?? 100_000;
    while (
      this.history.length > 0 &&
      (this.historyChangeCount > limit || this.history.length > MAX_BATCHES)
    ) {
      const dropped = this.history.shift()!;
      this.historyChangeCount -= dropped.changed.size;
      this.coveredFrom = dropped.version;
    }
  }

  subscribe(subscriber: SyncSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** A delta from `base` to `version` carrying the current state of the changed resources. */
  private encodeChanges(
    base: number,
    version: number,
    changed: ReadonlyMap<string, ResourceKey>,
  ): EncodedResponse {
    const upserts: ResourceMessage[] = [];
    const removals: ResourceKey[] = [];
    for (const [id, key] of changed) {
      const msg = this.view.get(id);
      if (msg !== undefined) upserts.push(msg);
      else removals.push(key);
    }
    return new EncodedResponse(
      { version, baseVersion: base, full: false, upserts, removals, trustBundlePem: '' },
      this.options.encode,
    );
  }

  /**
   * What a stream holding version `from` (0: nothing) needs to be current: a delta (empty when
   * nothing it needs changed since) when the history covers everything after `from`, else a
   * full snapshot.
   */
  responseFrom(from: number): EncodedResponse {
    if (from <= 0 || from < this.coveredFrom || from > this.knownRevision) return this.full();
    const changed = new Map<string, ResourceKey>();
    for (const batch of this.history) {
      if (batch.version <= from) continue;
      for (const [id, key] of batch.changed) changed.set(id, key);
    }
    const version = changed.size === 0 ? from : this.version;
    return this.encodeChanges(from, version, changed);
  }

  private full(): EncodedResponse {
    if (this.fullCache?.version !== this.version) {
      this.fullCache = new EncodedResponse(
        {
          version: this.version,
          baseVersion: 0,
          full: true,
          upserts: [...this.view.values()],
          removals: [],
          trustBundlePem: this.options.trustBundlePem,
        },
        this.options.encode,
      );
    }
    return this.fullCache;
  }

  /** The node's committed Workloads (by resource name). */
  workloadsOf(node: string): ReadonlyMap<string, StoreEntry<Workload>> {
    return this.workloads.get(node) ?? new Map();
  }

  /** Nodes that have at least one Workload. */
  nodesWithWorkloads(): string[] {
    return [...this.workloads.keys()];
  }

  /** Number of resources in the view. */
  get size(): number {
    return this.view.size;
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.subscribers.clear();
  }
}

const idOf = (msg: ResourceMessage): string => `${msg.kind}/${msg.name}`;

function toMessage(entry: StoreEntry): ResourceMessage {
  const { kind, name } = resourceIdOfKey(entry.key);
  // Without the apply id the registry marks its writes with: agents parse documents strictly.
  return {
    kind,
    name,
    json: JSON.stringify(withoutApplyId(entry.value)),
    revision: entry.modRevision,
  };
}
