import { afterEach, describe, expect, it, vi } from 'vitest';
import { FullSnapshotGate, type Slot } from '../../src/controlplane/sync/full-snapshot-gate.js';

afterEach(() => {
  vi.useRealTimers();
});

function recorder() {
  const started: number[] = [];
  const slots = new Map<number, Slot>();
  const start = (id: number) => (slot: Slot) => {
    started.push(id);
    slots.set(id, slot);
  };
  return { started, slots, start };
}

describe('FullSnapshotGate', () => {
  it('lets `slots` streams through at once and the rest in arrival order', () => {
    const gate = new FullSnapshotGate({ slots: 2, holdLimitMs: 60_000 });
    const r = recorder();
    for (let i = 1; i <= 5; i++) gate.acquire(r.start(i), () => {});
    expect(r.started).toEqual([1, 2]);
    expect(gate.load).toEqual({ active: 2, waiting: 3 });
    r.slots.get(2)!.release();
    expect(r.started).toEqual([1, 2, 3]);
    r.slots.get(1)!.release();
    r.slots.get(3)!.release();
    expect(r.started).toEqual([1, 2, 3, 4, 5]);
    r.slots.get(4)!.release();
    r.slots.get(5)!.release();
    expect(gate.load).toEqual({ active: 0, waiting: 0 });
  });

  it('counts a slot once however often it is released', () => {
    const gate = new FullSnapshotGate({ slots: 1, holdLimitMs: 60_000 });
    const r = recorder();
    gate.acquire(r.start(1), () => {});
    gate.acquire(r.start(2), () => {});
    gate.acquire(r.start(3), () => {});
    r.slots.get(1)!.release();
    r.slots.get(1)!.release();
    expect(r.started).toEqual([1, 2]);
    expect(gate.load).toEqual({ active: 1, waiting: 1 });
  });

  it('drops a waiting stream that closes, and frees the slot of a holding one', () => {
    const gate = new FullSnapshotGate({ slots: 1, holdLimitMs: 60_000 });
    const r = recorder();
    const cancel1 = gate.acquire(r.start(1), () => {});
    const cancel2 = gate.acquire(r.start(2), () => {});
    gate.acquire(r.start(3), () => {});
    cancel2();
    cancel1();
    expect(r.started).toEqual([1, 3]);
    expect(gate.load).toEqual({ active: 1, waiting: 0 });
  });

  it('gives up on a stream that holds its slot too long, and lets the next one in', () => {
    vi.useFakeTimers();
    const gate = new FullSnapshotGate({ slots: 1, holdLimitMs: 1_000 });
    const r = recorder();
    const gaveUp: number[] = [];
    gate.acquire(r.start(1), () => gaveUp.push(1));
    gate.acquire(r.start(2), () => gaveUp.push(2));
    vi.advanceTimersByTime(999);
    expect(gaveUp).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(gaveUp).toEqual([1]);
    expect(r.started).toEqual([1, 2]);
    // A release after the give-up changes nothing.
    r.slots.get(1)!.release();
    expect(gate.load).toEqual({ active: 1, waiting: 0 });
    r.slots.get(2)!.release();
    vi.advanceTimersByTime(5_000);
    expect(gaveUp).toEqual([1]);
  });

  it('refuses options it cannot work with, naming the field', () => {
    expect(() => new FullSnapshotGate({ slots: 0, holdLimitMs: 1_000 })).toThrow(/slots/);
    expect(() => new FullSnapshotGate({ slots: 1.5, holdLimitMs: 1_000 })).toThrow(/slots/);
    expect(() => new FullSnapshotGate({ slots: 4, holdLimitMs: 0 })).toThrow(/holdLimitMs/);
  });
});
