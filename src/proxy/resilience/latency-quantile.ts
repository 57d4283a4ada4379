// A route rule's observed latency quantile (hedging's "p95" delay), kept cheaply: a histogram of
// log-spaced buckets (four per doubling, so a quantile is within 19 % of the true value) over the
// last one to two windows: samples go to the current window, the previous one is kept beside it
// and dropped when the next window starts, so the estimate follows a change within two windows.
// One observation is a log2 and an array increment; the clock is injected.

/** The first bucket's upper bound (ms); bucket i ends at FIRST_MS * 2^(i / PER_DOUBLING). */
const FIRST_MS = 0.25;
const PER_DOUBLING = 4;
/** 80 buckets: up to 0.25 ms * 2^20, about 4.4 minutes; slower samples land in the last. */
const BUCKETS = 80;

export interface LatencyQuantileOptions {
  /** One window (default 10 s): the estimate covers the last one to two. */
  windowMs?: number;
  /** Fewer samples than this in the two windows: no estimate (default 20). */
  minSamples?: number;
  now: () => number;
}

export class LatencyQuantile {
  private current = new Uint32Array(BUCKETS);
  private previous = new Uint32Array(BUCKETS);
  private currentCount = 0;
  private previousCount = 0;
  private windowStart: number;
  private readonly windowMs: number;
  private readonly minSamples: number;
  private readonly now: () => number;

  constructor(opts: LatencyQuantileOptions) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.minSamples = opts.minSamples ?? 20;
    this.now = opts.now;
    this.windowStart = opts.now();
  }

  /** One request's latency (ms). */
  observe(ms: number): void {
    this.advance();
    this.current[bucketOf(ms)]! += 1;
    this.currentCount += 1;
  }

  /**
   * The q-quantile (0-1) of the samples in the last one to two windows, as its bucket's upper
   * bound (ms); undefined with fewer than minSamples samples.
   */
  quantile(q: number): number | undefined {
    this.advance();
    const total = this.currentCount + this.previousCount;
    if (total < this.minSamples || total === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.current[i]! + this.previous[i]!;
      if (seen >= rank) return upperBound(i);
    }
    return upperBound(BUCKETS - 1);
  }

  private advance(): void {
    const elapsed = this.now() - this.windowStart;
    if (elapsed < this.windowMs) return;
    if (elapsed < 2 * this.windowMs) {
      // One window passed: the current one becomes the previous.
      const old = this.previous;
      this.previous = this.current;
      this.previousCount = this.currentCount;
      old.fill(0);
      this.current = old;
      this.windowStart += this.windowMs;
    } else {
      // Two or more: nothing recent is left.
      this.previous.fill(0);
      this.current.fill(0);
      this.previousCount = 0;
      this.windowStart = this.now();
    }
    this.currentCount = 0;
  }
}

export function bucketOf(ms: number): number {
  if (!(ms > FIRST_MS)) return 0;
  const i = Math.ceil(PER_DOUBLING * Math.log2(ms / FIRST_MS));
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

export function upperBound(bucket: number): number {
  return FIRST_MS * 2 ** (bucket / PER_DOUBLING);
}
