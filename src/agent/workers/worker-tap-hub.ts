// `weft tap` on an agent with workers: the master's hub (which the tap socket and the control
// plane's tap stream open taps on) opens each tap in every worker too; workers send back the
// records of their requests, which go to the tap's subscriber here. Each worker applies the
// tap's rate limit to its own requests (a worker may serve them all), and the master applies it
// again to their sum, so a tap sees at most maxPerSecond however many workers there are.
// weft_tap_records_total is counted here, not in the workers (a record a worker passes on may
// be dropped here): the records each tap was sent and the dropped totals it was shown.

import type { TapFilter } from '../../telemetry/tap-filter.js';
import {
  DROPPED_REPORT_MS,
  type TapHandle,
  TapHub,
  type TapHubOptions,
  type TapSubscriber,
} from '../../telemetry/tap-hub.js';
import { TapLimiter } from '../../telemetry/tap-limiter.js';
import type { TapRecord } from '../../telemetry/tap-record.js';
import type { MasterMessage } from './worker-messages.js';

interface Forwarded {
  filter: TapFilter;
  subscriber: TapSubscriber;
  /** Each worker's dropped total, by pid. */
  dropped: Map<number, number>;
  /** The tap's rate over all workers' records. */
  limiter: TapLimiter;
  /** Records the master's limiter dropped. */
  droppedHere: number;
  /** The total last reported to the subscriber, and when. */
  reported: number;
  reportedAt: number;
}

export class WorkerTapHub extends TapHub {
  private readonly forwarded = new Map<string, Forwarded>();
  private readonly clock: () => number;

  constructor(
    options: TapHubOptions,
    private readonly toWorkers: (message: MasterMessage) => void,
  ) {
    super(options);
    this.clock = options.now ?? (() => performance.now());
  }

  override open(filter: TapFilter, subscriber: TapSubscriber): TapHandle {
    const handle = super.open(filter, subscriber);
    this.forwarded.set(handle.id, {
      filter,
      subscriber,
      dropped: new Map(),
      limiter: new TapLimiter(filter.maxPerSecond, this.clock),
      droppedHere: 0,
      reported: 0,
      reportedAt: this.clock(),
    });
    this.toWorkers({ type: 'tapOpen', id: handle.id, filter });
    return {
      id: handle.id,
      close: () => {
        const f = this.forwarded.get(handle.id);
        if (!f) return;
        this.forwarded.delete(handle.id);
        this.toWorkers({ type: 'tapClose', id: handle.id });
        this.reportDropped(f);
        handle.close();
      },
    };
  }

  /** The taps open now, as messages for a worker that starts now. */
  openMessages(): MasterMessage[] {
    return [...this.forwarded].map(([id, f]) => ({ type: 'tapOpen', id, filter: f.filter }));
  }

  fromWorker(id: string, records: TapRecord[]): void {
    const f = this.forwarded.get(id);
    if (!f) return;
    let kept = records.length;
    for (let i = 0; i < records.length; i++) {
      if (f.limiter.take()) continue;
      kept = i;
      break;
    }
    if (kept > 0) {
      f.subscriber.records(kept === records.length ? records : records.slice(0, kept));
      this.countOutcome('sent', kept);
    }
    if (kept === records.length) return;
    // The bucket is empty: the rest of this batch is dropped (a refill within a batch is
    // negligible: a batch is one worker's drain of one moment).
    f.droppedHere += records.length - kept;
    if (this.clock() - f.reportedAt >= DROPPED_REPORT_MS) this.reportDropped(f);
  }

  droppedInWorker(id: string, pid: number, total: number): void {
    const f = this.forwarded.get(id);
    if (!f) return;
    f.dropped.set(pid, total);
    this.reportDropped(f);
  }

  /** The tap's dropped total (every worker's and the master's), when it changed. */
  private reportDropped(f: Forwarded): void {
    let sum = f.droppedHere;
    for (const n of f.dropped.values()) sum += n;
    f.reportedAt = this.clock();
    if (sum === f.reported) return;
    this.countOutcome('dropped', sum - f.reported);
    f.reported = sum;
    f.subscriber.dropped(sum);
  }
}
