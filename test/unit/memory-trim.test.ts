// The agent's memory upkeep (src/agent/memory-trim.ts): the decision table, and the timer that
// acts on it, driven by fake timers and a scripted utilization.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  decideTrim,
  IDLE_UTILIZATION,
  MEMORY_TRIM_INTERVAL_MS,
  startMemoryTrim,
} from '../../src/agent/memory-trim.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('decideTrim', () => {
  it.each([
    { utilization: 0, trimmed: false, want: { action: 'collect-and-trim' } },
    { utilization: IDLE_UTILIZATION / 2, trimmed: false, want: { action: 'collect-and-trim' } },
    { utilization: 0, trimmed: true, want: { action: 'wait', reason: 'already-trimmed' } },
    { utilization: IDLE_UTILIZATION, trimmed: false, want: { action: 'wait', reason: 'busy' } },
    { utilization: 0.6, trimmed: true, want: { action: 'wait', reason: 'busy' } },
  ])('utilization $utilization, trimmed $trimmed -> $want', ({ utilization, trimmed, want }) => {
    expect(decideTrim(utilization, trimmed)).toEqual(want);
  });
});

describe('startMemoryTrim', () => {
  it('collects then trims once per idle period, again after a busy interval', () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    const script = [0.5, 0, 0, 0.3, 0.001, 0];
    const stop = startMemoryTrim({
      trim: () => calls.push('trim'),
      collect: () => calls.push('collect'),
      utilization: () => script.shift() ?? 0,
      intervalMs: 1_000,
    });
    vi.advanceTimersByTime(1_000); // busy
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1_000); // idle: collect and trim
    expect(calls).toEqual(['collect', 'trim']);
    vi.advanceTimersByTime(1_000); // still idle: nothing new to give back
    expect(calls).toEqual(['collect', 'trim']);
    vi.advanceTimersByTime(1_000); // busy again
    vi.advanceTimersByTime(1_000); // idle: once more
    expect(calls).toEqual(['collect', 'trim', 'collect', 'trim']);
    stop();
    vi.advanceTimersByTime(10_000);
    expect(calls).toHaveLength(4);
  });

  it('checks every 30 s by default', () => {
    vi.useFakeTimers();
    const trim = vi.fn();
    const stop = startMemoryTrim({ trim, collect: () => {}, utilization: () => 0 });
    vi.advanceTimersByTime(MEMORY_TRIM_INTERVAL_MS - 1);
    expect(trim).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    stop();
  });
});
