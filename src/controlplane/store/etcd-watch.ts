// One store watch on etcd: its own watch stream, replaying from a revision and following live
// changes, one batch per etcd revision. A broken stream (an etcd member gone, a network blip)
// is opened again from the revision after the last one delivered, so the caller sees every
// change once, in order, or a StoreCompactedError when etcd no longer has that history.
import type { Etcd3, IKeyValue, IWatchResponse } from 'etcd3';
import { WeftError } from '../../errors.js';
import {
  StoreCompactedError,
  type StoreEvent,
  type WatchBatch,
  type WatchHandlers,
} from './store.js';

type WatchStream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;

export interface EtcdWatchTarget {
  client: Etcd3;
  /** The etcd key range watched (already under the store's root). */
  key: Buffer;
  rangeEnd: Buffer;
  /** Turns an etcd key-value into the store's entry (the root stripped, the JSON parsed). */
  toEntry(kv: IKeyValue): StoreEvent['entry'];
  /** Tells the store this watch has ended (it forgets it). */
  onEnd(): void;
}

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;

export class EtcdWatch {
  private readonly target: EtcdWatchTarget;
  private readonly handlers: WatchHandlers;
  /** The revision the next (re)opened stream starts from. */
  private next: number;
  private stream: WatchStream | undefined;
  private ended = false;
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(target: EtcdWatchTarget, fromRevision: number, handlers: WatchHandlers) {
    this.target = target;
    this.handlers = handlers;
    // etcd reads start_revision 0 as "from now": the store's contract starts at 1.
    this.next = Math.max(1, Math.floor(fromRevision));
    this.open();
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.target.onEnd();
    this.close();
  }

  /** Ends the watch with an error: no batch follows. */
  end(err: Error): void {
    if (this.ended) return;
    this.cancel();
    this.handlers.onError?.(err);
  }

  private close(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) {
      // Its listeners ignore it from now on (see open()); the cancellation surfaces as an error.
      stream.cancel();
    }
  }

  private open(): void {
    this.target.client.watchClient.watch().then(
      (stream) => {
        if (this.ended) {
          stream.on('error', () => {});
          stream.cancel();
          return;
        }
        this.stream = stream;
        const current = () => this.stream === stream;
        stream.on('data', (res: IWatchResponse) => current() && this.onResponse(res));
        stream.on('error', (err: Error) => current() && this.broken(err));
        stream.on('end', () => current() && this.broken(new Error('etcd ended the watch stream')));
        stream.write({
          create_request: {
            key: this.target.key,
            range_end: this.target.rangeEnd,
            start_revision: this.next,
            prev_kv: true,
          },
        });
      },
      (err: Error) => this.broken(err),
    );
  }

  /** The stream failed: open another one from where this one got to, later. */
  private broken(_err: Error): void {
    if (this.ended) return;
    this.close();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.ended) this.open();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private onResponse(res: IWatchResponse): void {
    if (this.ended) return;
    const compacted = Number(res.compact_revision ?? 0);
    if (res.canceled) {
      if (compacted > 0) this.end(new StoreCompactedError(this.next, compacted));
      else
        this.end(
          new WeftError(
            'WEFT_E_STORE',
            `etcd cancelled a watch: ${res.cancel_reason || 'no reason given'}`,
          ),
        );
      return;
    }
    this.retryMs = RETRY_FIRST_MS;
    if (res.events.length === 0) return;
    // One response may hold several revisions (never part of one): one batch per revision.
    const committedAt = Date.now();
    let batch: WatchBatch | undefined;
    const batches: WatchBatch[] = [];
    for (const event of res.events) {
      const revision = Number(event.kv.mod_revision);
      if (batch?.revision !== revision) {
        batch = { revision, events: [], committedAt };
        batches.push(batch);
      }
      if (event.type === 'Put') {
        batch.events.push({ type: 'put', key: '', entry: this.target.toEntry(event.kv) });
      } else {
        // The entry as it was before the delete (the watch asks etcd for prev_kv).
        const before = event.prev_kv ?? event.kv;
        batch.events.push({ type: 'delete', key: '', entry: this.target.toEntry(before) });
      }
    }
    for (const b of batches) {
      for (const e of b.events) e.key = e.entry.key;
      if (this.ended) return;
      this.next = b.revision + 1;
      try {
        this.handlers.onBatch(b);
      } catch (err) {
        this.end(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  }
}
