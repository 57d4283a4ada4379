// The stats report of the whole agent from its workers' readouts (stats-readout.ts): counts
// summed series by series. A worker that exits takes its cumulative counts with it, so the
// master keeps the last readout of each exited worker as "retired" counts (its gauges, the
// requests in flight and connections open, are zero: they ended with it), and the agent's
// totals never go backwards.
import type { Readout, Tally } from '../../telemetry/stats-readout.js';

export function mergeReadouts(readouts: readonly Readout[]): Readout {
  const merged: Readout = new Map();
  for (const readout of readouts) {
    for (const [key, t] of readout) {
      const into = merged.get(key);
      if (!into) {
        merged.set(key, { ...t, buckets: [...t.buckets] });
        continue;
      }
      add(into, t);
    }
  }
  return merged;
}

/** What an exited worker leaves to the agent's totals: its counts, not its gauges. */
export function retiredPart(readout: Readout): Readout {
  const part: Readout = new Map();
  for (const [key, t] of readout)
    part.set(key, { ...t, buckets: [...t.buckets], inFlight: 0, tcpOpen: 0 });
  return part;
}

function add(into: Tally, t: Tally): void {
  into.requests += t.requests;
  into.successes += t.successes;
  into.inFlight += t.inFlight;
  into.tcpOpened += t.tcpOpened;
  into.tcpOpen += t.tcpOpen;
  into.bytesIn += t.bytesIn;
  into.bytesOut += t.bytesOut;
  for (let i = 0; i < t.buckets.length; i++)
    into.buckets[i] = (into.buckets[i] ?? 0) + (t.buckets[i] ?? 0);
}
