// What the data path knows about one endpoint beyond the control plane's view: connections
// in flight, and passive failure accrual (consecutive connect failures eject it for a while,
// Linkerd-style: the penalty doubles up to a cap, and one probe is let through after it; the
// endpoint stays out of rotation until that probe reports, or for another penalty if it never
// does, so that a balancer that favours the idle endpoint cannot send it every connection).
import type { EndpointView } from '../../controlplane-client/mesh-view.js';

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

export class EndpointState {
  active = 0;
  private failures = 0;
  private ejections = 0;
  private ejectedUntil = 0;

  constructor(
    public endpoint: EndpointView,
    private readonly accrual: FailureAccrual = defaultFailureAccrual,
  ) {}

  get key(): string {
    return this.endpoint.workload;
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

  /** The length of ejection number `n` (from 0): doubling, capped. */
  private penalty(n: number): number {
    return Math.min(this.accrual.baseEjectionMs * 2 ** n, this.accrual.maxEjectionMs);
  }
}
