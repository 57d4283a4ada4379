// The master's tap hub on an agent with workers: every worker limits its own records to the
// tap's rate, so the master limits their sum again; what it drops is counted with the
// workers' drops, and reported at most once per DROPPED_REPORT_MS and at close.
import { describe, expect, it } from 'vitest';
import { WorkerTapHub } from '../../src/agent/workers/worker-tap-hub.js';
import { parseTapFilter } from '../../src/telemetry/tap-filter.js';
import { DROPPED_REPORT_MS } from '../../src/telemetry/tap-hub.js';
import type { TapRecord } from '../../src/telemetry/tap-record.js';

const record = (path: string) => ({ path }) as unknown as TapRecord;
const batch = (worker: string, n: number) =>
  Array.from({ length: n }, (_, i) => record(`/${worker}/${i}`));

function setup(maxPerSecond: number) {
  let now = 0;
  const hub = new WorkerTapHub({ node: 'n1', now: () => now }, () => undefined);
  const got: TapRecord[] = [];
  const dropped: number[] = [];
  const handle = hub.open(parseTapFilter({ maxPerSecond }), {
    records: (r) => got.push(...r),
    dropped: (total) => dropped.push(total),
  });
  return { hub, handle, got, dropped, advance: (ms: number) => (now += ms) };
}

describe('WorkerTapHub: a tap sees at most maxPerSecond whatever the number of workers', () => {
  it.each([
    // workers, each sending maxPerSecond in the same second -> delivered, dropped by the master
    { workers: 1, max: 10, delivered: 10, dropped: 0 },
    { workers: 2, max: 10, delivered: 10, dropped: 10 },
    { workers: 4, max: 25, delivered: 25, dropped: 75 },
  ])('$workers worker(s) at $max/s each', ({ workers, max, delivered, dropped: want }) => {
    const t = setup(max);
    for (let w = 0; w < workers; w++) t.hub.fromWorker(t.handle.id, batch(`w${w}`, max));
    expect(t.got).toHaveLength(delivered);
    // The oldest records pass; the rest of the second's are dropped and counted.
    expect(t.got[0]).toEqual(record('/w0/0'));
    t.handle.close();
    expect(t.dropped.at(-1) ?? 0).toBe(want);
  });

  it('refills with the clock: the next second delivers again', () => {
    const t = setup(10);
    t.hub.fromWorker(t.handle.id, batch('a', 10));
    t.hub.fromWorker(t.handle.id, batch('b', 10));
    t.advance(1_000);
    t.hub.fromWorker(t.handle.id, batch('c', 10));
    expect(t.got.map((r) => r.path.split('/')[1])).toEqual([
      ...Array(10).fill('a'),
      ...Array(10).fill('c'),
    ]);
  });

  it("adds the master's drops to the workers' and reports them at most once per interval", () => {
    const t = setup(10);
    t.hub.droppedInWorker(t.handle.id, 101, 5);
    expect(t.dropped).toEqual([5]);
    t.hub.fromWorker(t.handle.id, batch('a', 12)); // 2 dropped here: reported with the next report
    t.hub.fromWorker(t.handle.id, batch('b', 3)); // 3 more
    t.advance(DROPPED_REPORT_MS);
    t.hub.fromWorker(t.handle.id, batch('c', 11)); // refilled: 10 pass, 1 dropped; time to report
    expect(t.dropped).toEqual([5, 11]);
    t.hub.droppedInWorker(t.handle.id, 102, 4);
    expect(t.dropped).toEqual([5, 11, 15]);
    t.handle.close();
    expect(t.dropped.at(-1)).toBe(15);
  });
});
