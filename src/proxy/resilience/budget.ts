// A retry budget per destination service (Linkerd's and Finagle's model): over a sliding
// window (10 s), retries may add `percent` % of the requests plus `minPerSecond` per second of
// the window, so a failing service sees at most (1 + percent/100) times its load plus that
// floor, however many of its callers retry. The window is a ring of one-second buckets: a
// request and a retry each cost one counter update, and the clock is injected.

export interface RetryBudgetOptions {
  /** Retries may add this share of the requests in the window (0-100). */
  percent: number;
  /** ... plus this many retries per second of the window, whatever the traffic. */
  minPerSecond: number;
  /** The window (default 10 s), and how many buckets it is cut into (default 10). */
  windowMs?: number;
  buckets?: number;
  now: () => number;
}

export class RetryBudget {
  private readonly ratio: number;
  private readonly reserve: number;
  private readonly bucketMs: number;
  private readonly requests: number[];
  private readonly retries: number[];
  private requestSum = 0;
  private retrySum = 0;
  private index = 0;
  private bucketStart: number;
  private readonly now: () => number;

  constructor(opts: RetryBudgetOptions) {
    const windowMs = opts.windowMs ?? 10_000;
    const n = opts.buckets ?? 10;
    this.ratio = opts.percent / 100;
    this.reserve = opts.minPerSecond * (windowMs / 1_000);
    this.bucketMs = windowMs / n;
    this.requests = new Array<number>(n).fill(0);
    this.retries = new Array<number>(n).fill(0);
    this.now = opts.now;
    this.bucketStart = opts.now();
  }

  /** An original request (not a retry): it earns the budget its share. */
  deposit(): void {
    this.advance();
    this.requests[this.index]! += 1;
    this.requestSum += 1;
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  withdraw(): boolean {
    this.advance();
    if (this.retrySum + 1 > this.requestSum * this.ratio + this.reserve) return false;
    this.retries[this.index]! += 1;
    this.retrySum += 1;
    return true;
  }

  /** Requests and retries in the window now (for tests and /config_dump). */
  window(): { requests: number; retries: number } {
    this.advance();
    return { requests: this.requestSum, retries: this.retrySum };
  }

  /** Moves to the bucket of now, emptying the ones that left the window. */
  private advance(): void {
    const now = this.now();
    const steps = Math.floor((now - this.bucketStart) / this.bucketMs);
    if (steps <= 0) return;
    const n = this.requests.length;
    for (let i = 0; i < Math.min(steps, n); i++) {
      this.index = (this.index + 1) % n;
      this.requestSum -= this.requests[this.index]!;
      this.retrySum -= this.retries[this.index]!;
      this.requests[this.index] = 0;
      this.retries[this.index] = 0;
    }
    this.bucketStart += steps * this.bucketMs;
  }
}
