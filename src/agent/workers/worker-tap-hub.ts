// `weft tap` on an agent with workers: the master's hub (which the tap socket and the control
// plane's tap stream open taps on) opens each tap in every worker too; workers send back the
// records of their requests, which go to the tap's subscriber here. Each worker applies the
// tap's rate limit to its own requests, so a tap may see up to workers x maxPerSecond.

import type { TapFilter } from '../../telemetry/tap-filter.js';
import {
  type TapHandle,
  TapHub,
  type TapHubOptions,
  type TapSubscriber,
} from '../../telemetry/tap-hub.js';
import type { TapRecord } from '../../telemetry/tap-record.js';
import type { MasterMessage } from './worker-messages.js';

interface Forwarded {
  filter: TapFilter;
  subscriber: TapSubscriber;
  /** Each worker's dropped total, by pid. */
  dropped: Map<number, number>;
}

export class WorkerTapHub extends TapHub {
  private readonly forwarded = new Map<string, Forwarded>();

  constructor(
    options: TapHubOptions,
    private readonly toWorkers: (message: MasterMessage) => void,
  ) {
    super(options);
  }

  override open(filter: TapFilter, subscriber: TapSubscriber): TapHandle {
    const handle = super.open(filter, subscriber);
    this.forwarded.set(handle.id, { filter, subscriber, dropped: new Map() });
    this.toWorkers({ type: 'tapOpen', id: handle.id, filter });
    return {
      id: handle.id,
      close: () => {
        if (!this.forwarded.delete(handle.id)) return;
        this.toWorkers({ type: 'tapClose', id: handle.id });
        handle.close();
      },
    };
  }

  /** The taps open now, as messages for a worker that starts now. */
  openMessages(): MasterMessage[] {
    return [...this.forwarded].map(([id, f]) => ({ type: 'tapOpen', id, filter: f.filter }));
  }

  fromWorker(id: string, records: TapRecord[]): void {
    this.forwarded.get(id)?.subscriber.records(records);
  }

  droppedInWorker(id: string, pid: number, total: number): void {
    const f = this.forwarded.get(id);
    if (!f) return;
    f.dropped.set(pid, total);
    let sum = 0;
    for (const n of f.dropped.values()) sum += n;
    f.subscriber.dropped(sum);
  }
}
