// The latency histogram agents ship and the control plane merges: fixed bucket bounds (the L7
// engine's request-duration buckets, in ms), counts per bucket, so that the numbers of many
// agents add up exactly and percentiles come from the merged counts, never from averaging
// each agent's percentiles.
import { DURATION_BUCKETS } from '../proxy/http/request-telemetry.js';

/** Upper bounds in milliseconds; a last bucket beyond them (+Inf) follows. */
export const LATENCY_BOUNDS_MS: readonly number[] = DURATION_BUCKETS.map((s) => round(s * 1000));

/** An empty histogram: one count per bound, and one for +Inf. */
export function emptyBuckets(): number[] {
  return new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
}

/** Adds `from` (over `fromBounds`) into `into` (over LATENCY_BOUNDS_MS), in place. */
export function addBuckets(
  into: number[],
  from: readonly number[],
  fromBounds: readonly number[] = LATENCY_BOUNDS_MS,
): void {
  if (fromBounds === LATENCY_BOUNDS_MS || sameBounds(fromBounds)) {
    for (let i = 0; i < into.length && i < from.length; i++)
      into[i] = (into[i] as number) + (from[i] as number);
    return;
  }
  // Other bounds (another agent version): each count goes to the first bucket whose bound
  // holds its upper bound, so no request is lost and none is reported faster than it was.
  for (let i = 0; i < from.length; i++) {
    const upper = i < fromBounds.length ? (fromBounds[i] as number) : Number.POSITIVE_INFINITY;
    const at = LATENCY_BOUNDS_MS.findIndex((b) => upper <= b);
    const slot = at === -1 ? LATENCY_BOUNDS_MS.length : at;
    into[slot] = (into[slot] as number) + (from[i] as number);
  }
}

function sameBounds(bounds: readonly number[]): boolean {
  return (
    bounds.length === LATENCY_BOUNDS_MS.length && bounds.every((b, i) => b === LATENCY_BOUNDS_MS[i])
  );
}

/**
 * The q-quantile (0-1) of a histogram in ms, interpolated inside its bucket as Prometheus's
 * histogram_quantile does; 0 for an empty histogram. A quantile in the +Inf bucket is reported
 * as the highest bound (all that is known is "more than that").
 */
export function quantileMs(buckets: readonly number[], q: number): number {
  let total = 0;
  for (const c of buckets) total += c;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i] as number;
    if (count > 0 && seen + count >= rank) {
      if (i >= LATENCY_BOUNDS_MS.length) return LATENCY_BOUNDS_MS.at(-1) as number;
      const lower = i === 0 ? 0 : (LATENCY_BOUNDS_MS[i - 1] as number);
      const upper = LATENCY_BOUNDS_MS[i] as number;
      return round(lower + ((upper - lower) * (rank - seen)) / count);
    }
    seen += count;
  }
  return LATENCY_BOUNDS_MS.at(-1) as number;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
