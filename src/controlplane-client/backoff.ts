// Reconnect delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
// Backoff And Jitter"): a fleet that lost its control plane at the same moment spreads its
// reconnects evenly instead of arriving in waves when the control plane returns.
import { WeftError } from '../errors.js';

export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. */
  baseMs: number;
  /** No delay ever exceeds this, in ms. */
  capMs: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

/**
 * The agent's reconnects to the control plane. The cap bounds how long an agent stays away
 * after the control plane is back (a restart, a healed partition): 10 s keeps every agent back
 * well before the control plane marks silent nodes stale (workloadStaleAfter, 20 s), while a
 * fleet of thousands still spreads its reconnects over those 10 s.
 */
export const defaultBackoff: BackoffOptions = { baseMs: 250, capMs: 10_000 };

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions = defaultBackoff) {
    if (!(options.baseMs > 0)) {
      throw new WeftError('WEFT_E_CONFIG', `backoff.baseMs must be > 0, got ${options.baseMs}`);
    }
    if (!(options.capMs >= options.baseMs)) {
      throw new WeftError('WEFT_E_CONFIG', `backoff.capMs must be >= baseMs, got ${options.capMs}`);
    }
    this.random = options.random ?? Math.random;
  }

  /** The ceiling for the next delay: base * 2^attempt, capped. */
  ceilingMs(): number {
    // 2^attempt overflows to Infinity long after it passes any cap; min() keeps it finite.
    return Math.min(this.options.capMs, this.options.baseMs * 2 ** this.attempt);
  }

  /** The next delay, uniform in [0, ceiling); each call moves one attempt further. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceilingMs());
    this.attempt += 1;
    return delay;
  }

  /** After a healthy connection: the next failure starts from the base again. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
