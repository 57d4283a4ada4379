// What the data path knows about one endpoint beyond the control plane's view: connections
// in flight, and passive failure accrual (consecutive connect failures eject it for a while,
// Linkerd-style: the penalty doubles up to a cap, and one probe is let through after it; the
// endpoint stays out of rotation until that probe reports, or for another penalty if it never
// does, so that a balancer that favours the idle endpoint cannot send it every connection),
// and a peak-EWMA estimate of its latency for the per-request balancer.
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import { WeftError } from '../../errors.js';

export interface FailureAccrual {
  /** Consecutive failures that eject the endpoint. */
  consecutiveFailures: number;
  /** First ejection's length; each further ejection doubles it. */
  baseEjectionMs: number;
  maxEjectionMs: number;
}

export const defaultFailureAccrual: FailureAccrual = {
  consecutiveFailures: 3,
  baseEjectionMs: 1_000,
  maxEjectionMs: 60_000,
};

/** The peak-EWMA time constant: Linkerd's and Finagle's decay of 10 s. */
export const defaultLatencyDecayMs = 10_000;

export class EndpointState {
  /** In flight: connections (opaque TCP) or requests (HTTP); the caller counts them. */
  active = 0;
  private failures = 0;
  private ejections = 0;
  private ejectedUntil = 0;
  /** The latency estimate (ms) as of `observedAt`; NaN until the first counted response. */
  private estimate = Number.NaN;
  private observedAt = 0;
  /** Whether the first response has been seen (and left out: see observe()). */
  private warm = false;

  constructor(
    public endpoint: EndpointView,
    private readonly accrual: FailureAccrual = defaultFailureAccrual,
    private readonly decayMs: number = defaultLatencyDecayMs,
  ) {}

  get key(): string {
    return this.endpoint.workload;
  }

  /** The weight balancers use: a registered 0 counts as 1, as it always has. */
  get weight(): number {
    return Math.max(1, this.endpoint.weight);
  }

  /** Usable now: not marked unhealthy by its host's checks, and not ejected here. */
  available(now: number): boolean {
    return this.endpoint.health !== 'unhealthy' && now >= this.ejectedUntil;
  }

  ejected(now: number): boolean {
    return now < this.ejectedUntil;
  }

  /** Handed to a connection: after an ejection, that connection is the one probe. */
  taken(now: number): void {
    if (this.ejections === 0) return;
    this.ejectedUntil = now + this.penalty(this.ejections - 1);
  }

  succeeded(): void {
    this.failures = 0;
    this.ejections = 0;
    this.ejectedUntil = 0;
  }

  /** Returns true when this failure ejected the endpoint. */
  failed(now: number): boolean {
    this.failures += 1;
    if (this.failures < this.accrual.consecutiveFailures && this.ejections === 0) return false;
    // After an ejection, the first probe that fails ejects again at once (with a longer
    // penalty): the endpoint has not shown it recovered.
    this.ejectedUntil = now + this.penalty(this.ejections);
    this.ejections += 1;
    this.failures = 0;
    return true;
  }

  /**
   * A response's latency (ms, from sending the request to its response headers), observed at
   * `now` (the pool's clock: Date.now() in the agent). Peak EWMA (Finagle, Linkerd): a sample
   * above the current estimate replaces it at once, so a slowing endpoint loses traffic within
   * one response; one below pulls the estimate toward itself with weight 1 - e^(-dt/tau), dt
   * being the time since the previous sample, so that a burst of fast answers after one slow
   * one does not hide it.
   */
  observe(latencyMs: number, now: number): void {
    if (!Number.isFinite(latencyMs) || latencyMs < 0) {
      throw new WeftError(
        'WEFT_E_INTERNAL',
        `endpoint ${this.key}: a latency must be a finite number of milliseconds >= 0, got ${latencyMs}`,
      );
    }
    // The first response an endpoint gives is not a measure of it: it carries the receiving
    // side's set-up (the agent's connection to the app) and code paths not compiled yet, often
    // 10-30x a warm answer. As a peak it would keep the endpoint out of a sequential caller's
    // rotation for as long as the estimate takes to decay (about 13 s in the lab).
    if (!this.warm) {
      this.warm = true;
      return;
    }
    const current = this.latency(now);
    if (current === undefined || latencyMs >= current) {
      this.estimate = latencyMs;
    } else {
      const w = Math.exp(-Math.max(0, now - this.observedAt) / this.decayMs);
      this.estimate = current * w + latencyMs * (1 - w);
    }
    this.observedAt = now;
  }

  /**
   * The latency estimate (ms) at `now`, undefined before the first response. It decays toward
   * zero while no response arrives (Finagle reads its estimate as an observation of 0): an
   * endpoint left alone after slow answers looks cheaper over time and is tried again, so its
   * share comes back once it is fast again.
   */
  latency(now: number): number | undefined {
    if (Number.isNaN(this.estimate)) return undefined;
    return this.estimate * Math.exp(-Math.max(0, now - this.observedAt) / this.decayMs);
  }

  /** The length of ejection number `n` (from 0): doubling, capped. */
  private penalty(n: number): number {
    return Math.min(this.accrual.baseEjectionMs * 2 ** n, this.accrual.maxEjectionMs);
  }
}
