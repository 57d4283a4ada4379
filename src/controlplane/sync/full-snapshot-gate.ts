// How many full snapshots the control plane has on the wire at once. The hub encodes a
// snapshot once per version, but gRPC frames a copy of it for every stream and holds that copy
// until the agent's flow-control window lets it out: 1,000 agents reconnecting together (a
// control plane restart) made 1,000 copies of a 3 MB snapshot, 2.9 GB of RSS, an event loop too
// busy to read heartbeats, and every stream dropped (bench scenario 6). Streams past the limit
// wait their turn; a waiting stream gets the newest snapshot when its turn comes, not a stale
// one. A stream that holds a slot longer than `holdLimitMs` (an agent that stopped reading) is
// given up on, so one stuck agent cannot stall the fleet's reconnect.

import { WeftError } from '../../errors.js';

export interface GateOptions {
  slots: number;
  holdLimitMs: number;
}

export const DEFAULT_GATE: GateOptions = { slots: 16, holdLimitMs: 60_000 };

/** A granted slot: release() once the snapshot is written (idempotent). */
export interface Slot {
  release(): void;
}

export class FullSnapshotGate {
  private active = 0;
  /** Grants waiting for a slot, oldest first. */
  private readonly queue = new Set<() => void>();

  constructor(private readonly options: GateOptions = DEFAULT_GATE) {
    if (!Number.isInteger(options.slots) || options.slots < 1) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `full snapshot gate: slots must be an integer of at least 1, got ${options.slots}`,
      );
    }
    if (!Number.isFinite(options.holdLimitMs) || options.holdLimitMs <= 0) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `full snapshot gate: holdLimitMs must be a positive number, got ${options.holdLimitMs}`,
      );
    }
  }

  /**
   * Calls `start` with a slot now if one is free, else as soon as one frees. If the slot is
   * still held after holdLimitMs, it is released and `onHoldLimit` runs. Returns a cancel
   * function (a stream that closes while waiting or holding).
   */
  acquire(start: (slot: Slot) => void, onHoldLimit: () => void): () => void {
    let slot: Slot | undefined;
    const grant = (): void => {
      this.active += 1;
      let released = false;
      const timer = setTimeout(() => {
        slot?.release();
        onHoldLimit();
      }, this.options.holdLimitMs);
      timer.unref();
      slot = {
        release: () => {
          if (released) return;
          released = true;
          clearTimeout(timer);
          this.active -= 1;
          this.next();
        },
      };
      start(slot);
    };
    if (this.active < this.options.slots) grant();
    else this.queue.add(grant);
    return () => {
      this.queue.delete(grant);
      slot?.release();
    };
  }

  /** Slots in use and streams waiting, for metrics. */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.queue.size };
  }

  private next(): void {
    while (this.active < this.options.slots && this.queue.size > 0) {
      const [grant] = this.queue;
      this.queue.delete(grant!);
      grant!();
    }
  }
}
