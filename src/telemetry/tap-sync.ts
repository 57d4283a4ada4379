// Taps the control plane starts on this agent through the sync stream (`weft tap` with the
// admin certificate): TapStart opens a tap in the hub, its records go back up the same stream
// in TapBatch messages, gathered for BATCH_MS so a busy tap sends a few messages a second, not
// one per request. TapStop, or the stream's end (the control plane or the admin went away),
// closes it: a tap never outlives the stream that asked for it.
import type { SyncRequest, SyncResponse, TapBatch } from '../api/messages.js';
import type { ControlPlaneSession } from '../controlplane-client/session.js';
import type { Logger } from '../sys/logger.js';
import { parseTapFilter } from './tap-filter.js';
import type { TapHandle, TapHub } from './tap-hub.js';
import type { TapRecord } from './tap-record.js';

export const BATCH_MS = 200;

type Send = (message: SyncRequest) => void;

interface SyncTap {
  handle: TapHandle;
  pending: string[];
  dropped: number;
  timer: NodeJS.Timeout | undefined;
  send: Send;
}

export class SyncTaps {
  private readonly taps = new Map<string, SyncTap>();

  constructor(
    private readonly hub: TapHub,
    private readonly log: Logger,
  ) {}

  /** A control message from the sync stream. */
  control(message: SyncResponse, send: Send): void {
    if (message.tapStart) this.start(message.tapStart.id, message.tapStart.filter, send);
    if (message.tapStop) this.stop(message.tapStop.id);
  }

  /** The stream ended: every tap it started ends. */
  streamEnded(): void {
    for (const id of [...this.taps.keys()]) this.stop(id);
  }

  private start(id: string, filterMessage: Parameters<typeof parseTapFilter>[0], send: Send): void {
    if (this.taps.has(id)) return;
    let filter: ReturnType<typeof parseTapFilter>;
    try {
      filter = parseTapFilter(filterMessage);
    } catch (err) {
      send({ tapBatch: batch(id, [], 0, (err as Error).message) });
      return;
    }
    const tap: SyncTap = {
      handle: undefined as unknown as TapHandle,
      pending: [],
      dropped: 0,
      timer: undefined,
      send,
    };
    const flushSoon = () => {
      tap.timer ??= setTimeout(() => this.flush(id), BATCH_MS);
    };
    tap.handle = this.hub.open(filter, {
      records: (records: TapRecord[]) => {
        for (const r of records) tap.pending.push(JSON.stringify(r));
        flushSoon();
      },
      dropped: (total) => {
        tap.dropped = total;
        flushSoon();
      },
    });
    this.taps.set(id, tap);
    this.log.info({ tap: id, filter: filterMessage }, 'tap started by the control plane');
    // An empty batch at once: the control plane knows the tap runs here.
    send({ tapBatch: batch(id, [], 0, '') });
  }

  private flush(id: string): void {
    const tap = this.taps.get(id);
    if (tap === undefined) return;
    tap.timer = undefined;
    const records = tap.pending;
    tap.pending = [];
    tap.send({ tapBatch: batch(id, records, tap.dropped, '') });
  }

  private stop(id: string): void {
    const tap = this.taps.get(id);
    if (tap === undefined) return;
    this.taps.delete(id);
    tap.handle.close();
    if (tap.timer) clearTimeout(tap.timer);
    this.log.info({ tap: id }, 'tap stopped');
  }
}

function batch(tapId: string, records: string[], dropped: number, error: string): TapBatch {
  return { tapId, node: '', records, dropped, error };
}

/** The agent's wiring: taps follow the session's control messages and end with its stream. */
export function tapsOfSession(session: ControlPlaneSession, hub: TapHub, log: Logger): SyncTaps {
  const taps = new SyncTaps(hub, log);
  session.on('control', (message, send) => taps.control(message, send));
  session.on('streamEnded', () => taps.streamEnded());
  return taps;
}
