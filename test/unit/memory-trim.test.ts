// The agent's memory upkeep (src/agent/memory-trim.ts): the decision table, and the timer that
// acts on it, driven by fake timers and a scripted utilization.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CONFIRM_IDLE_MS,
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
    // After an idle interval, a short window must be idle too before the collection.
    { utilization: 0, trimmed: false, stage: 'interval', want: { action: 'confirm' } },
    {
      utilization: IDLE_UTILIZATION / 2,
      trimmed: false,
      stage: 'interval',
      want: { action: 'confirm' },
    },
    { utilization: 0, trimmed: false, stage: 'confirm', want: { action: 'collect-and-trim' } },
    {
      utilization: IDLE_UTILIZATION / 2,
      trimmed: false,
      stage: 'confirm',
      want: { action: 'collect-and-trim' },
    },
    // Traffic that started at the end of the interval shows in the confirming window.
    {
      utilization: IDLE_UTILIZATION,
      trimmed: false,
      stage: 'confirm',
      want: { action: 'wait', reason: 'busy' },
    },
    {
      utilization: 0,
      trimmed: true,
      stage: 'interval',
      want: { action: 'wait', reason: 'already-trimmed' },
    },
    {
      utilization: IDLE_UTILIZATION,
      trimmed: false,
      stage: 'interval',
      want: { action: 'wait', reason: 'busy' },
    },
    {
      utilization: 0.6,
      trimmed: true,
      stage: 'interval',
      want: { action: 'wait', reason: 'busy' },
    },
  ] as const)(
    'utilization $utilization, trimmed $trimmed, after the $stage -> $want',
    ({ utilization, trimmed, stage, want }) => {
      expect(decideTrim(utilization, trimmed, stage)).toEqual(want);
    },
  );
});

describe('startMemoryTrim', () => {
  // Each step: advance the clock, the utilization the window that ends then reports, the calls.
  it('collects then trims once per idle period, again after a busy interval', () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    // Utilization of each window in turn (interval 1 s, confirming window 100 ms).
    const script = [0.5, 0, 0, 0, 0.3, 0.001, 0];
    const stop = startMemoryTrim({
      trim: () => calls.push('trim'),
      collect: () => calls.push('collect'),
      utilization: () => script.shift() ?? 0,
      intervalMs: 1_000,
      confirmMs: 100,
    });
    vi.advanceTimersByTime(1_000); // busy
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1_000); // idle: confirm first
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(100); // still idle: collect and trim
    expect(calls).toEqual(['collect', 'trim']);
    vi.advanceTimersByTime(900); // still idle: nothing new to give back
    expect(calls).toEqual(['collect', 'trim']);
    vi.advanceTimersByTime(1_000); // busy again
    vi.advanceTimersByTime(1_000); // idle: once more, after the confirming window
    vi.advanceTimersByTime(100);
    expect(calls).toEqual(['collect', 'trim', 'collect', 'trim']);
    expect(script).toEqual([]);
    stop();
    vi.advanceTimersByTime(10_000);
    expect(calls).toHaveLength(4);
  });

  // The defect: traffic that starts in the last seconds of an idle interval leaves the interval's
  // utilization under the threshold, and the collection (35-300 ms on a bench worker) then
  // stalled the first requests of the burst.
  it('does not collect when traffic starts at the end of an idle interval', () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    // The interval reads idle; the confirming window after it is busy; then busy, idle, idle.
    const script = [0.01, 0.3, 0.3, 0, 0];
    const stop = startMemoryTrim({
      trim: () => calls.push('trim'),
      collect: () => calls.push('collect'),
      utilization: () => script.shift() ?? 0,
      intervalMs: 1_000,
      confirmMs: 100,
    });
    vi.advanceTimersByTime(1_100); // the interval, then its confirming window
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1_000); // the burst goes on
    expect(calls).toEqual([]);
    // The sentinel: once idle again (interval and window), it does collect.
    vi.advanceTimersByTime(1_100);
    expect(calls).toEqual(['collect', 'trim']);
    stop();
  });

  it('checks every 30 s by default, collecting after a confirming window', () => {
    vi.useFakeTimers();
    const trim = vi.fn();
    const stop = startMemoryTrim({ trim, collect: () => {}, utilization: () => 0 });
    vi.advanceTimersByTime(MEMORY_TRIM_INTERVAL_MS + CONFIRM_IDLE_MS - 1);
    expect(trim).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    stop();
  });

  it('stop() also ends a confirming window in progress', () => {
    vi.useFakeTimers();
    const trim = vi.fn();
    const stop = startMemoryTrim({ trim, collect: () => {}, utilization: () => 0 });
    vi.advanceTimersByTime(MEMORY_TRIM_INTERVAL_MS);
    stop();
    vi.advanceTimersByTime(MEMORY_TRIM_INTERVAL_MS * 2);
    expect(trim).toHaveBeenCalledTimes(0);
  });
});
