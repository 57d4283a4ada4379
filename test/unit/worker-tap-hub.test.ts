// The master's tap hub on an agent with workers: every worker limits its own records to the
// tap's rate, so the master limits their sum again; what it drops is counted with the
// workers' drops, and reported at most once per DROPPED_REPORT_MS and at close.
import { Registry } from 'prom-client';
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
  const registry = new Registry();
  const hub = new WorkerTapHub({ node: 'n1', now: () => now, registry }, () => undefined);
  const got: TapRecord[] = [];
  const dropped: number[] = [];
  const handle = hub.open(parseTapFilter({ maxPerSecond }), {
    records: (r) => got.push(...r),
    dropped: (total) => dropped.push(total),
  });
  const outcome = async (name: 'sent' | 'dropped') =>
    (await registry.getSingleMetric('weft_tap_records_total')?.get())?.values.find(
      (v) => v.labels.outcome === name,
    )?.value ?? 0;
  return { hub, handle, got, dropped, outcome, advance: (ms: number) => (now += ms) };
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

  // The workers count nothing (a record a worker passes may be dropped here): the master's
  // weft_tap_records_total is what its taps were sent and the dropped totals they were shown.
  it('counts in weft_tap_records_total exactly what the tap was sent and shown as dropped', async () => {
    const t = setup(10);
    t.hub.droppedInWorker(t.handle.id, 101, 5);
    t.hub.fromWorker(t.handle.id, batch('a', 12));
    t.advance(DROPPED_REPORT_MS);
    t.hub.fromWorker(t.handle.id, batch('b', 11));
    t.hub.fromWorker(t.handle.id, batch('c', 3));
    t.handle.close();
    expect(await t.outcome('sent')).toBe(t.got.length);
    expect(await t.outcome('dropped')).toBe(t.dropped.at(-1));
    expect(t.dropped.at(-1)).toBe(5 + 2 + 1 + 3);
  });
});
