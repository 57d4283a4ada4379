// A tap's rate limit: a token bucket of `perSecond` tokens, refilled lazily from an injected
// clock (no timer), so a flood costs a tap at most `perSecond` copies a second, the rest counted.
export class TapLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = perSecond;
    this.last = now();
  }

  /** When the bucket next holds a token (now, or a moment of the clock ahead). */
  nextTokenAt(): number {
    const t = this.now();
    const tokens = Math.min(
      this.perSecond,
      this.tokens + ((t - this.last) / 1000) * this.perSecond,
    );
    return tokens >= 1 ? t : t + ((1 - tokens) / this.perSecond) * 1000;
  }

  /** Takes one token; false when the bucket is empty (the record is dropped). */
  take(): boolean {
    const t = this.now();
    const refill = ((t - this.last) / 1000) * this.perSecond;
    if (refill > 0) {
      this.tokens = Math.min(this.perSecond, this.tokens + refill);
      this.last = t;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
