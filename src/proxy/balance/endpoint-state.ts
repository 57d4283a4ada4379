// What the data path knows about one endpoint beyond the control plane's view: connections
// in flight, outlier detection (consecutive failures eject it for n x baseEjectionTime, the
// pool's maxEjectionPercent permitting; after the ejection it is half-open: exactly one probe
// is let through, and it stays out of rotation until that probe reports (back on success,
// ejected again and longer on failure) or for another ejection if it never does, so that a
// balancer that favours the idle endpoint cannot send it every connection), and a peak-EWMA
// estimate of its latency for the per-request balancer.
import type { EndpointView } from '../../controlplane-client/mesh-view.js';
import { WeftError } from '../../errors.js';
import {
  DEFAULT_OUTLIER_DETECTION,
  decayedEjections,
  ejectionMs,
  type OutlierDetection,
} from './outlier.js';

/** What an endpoint asks of its pool: the settings, the clock, and leave to be ejected. */
export interface OutlierGroup {
  readonly outlier: OutlierDetection;
  now(): number;
  /** Whether `candidate` may be ejected now (maxEjectionPercent; never the last usable one). */
  mayEject(candidate: EndpointState, now: number): boolean;
}

/** An endpoint on its own (no pool): the defaults, no share to keep. */
const alone: OutlierGroup = {
  outlier: DEFAULT_OUTLIER_DETECTION,
  now: () => Date.now(),
  mayEject: () => true,
};

/** The peak-EWMA time constant: Linkerd's and Finagle's decay of 10 s. */
export const defaultLatencyDecayMs = 10_000;

export class EndpointState {
  /** In flight: connections (opaque TCP) or requests (HTTP); the caller counts them. */
  active = 0;
  private failures = 0;
  /** Ejections so far (the next lasts one more base), lowered by time back in service. */
  private ejections = 0;
  /** Out of rotation by outlier detection: ejected, or half-open until its probe reports. */
  private out = false;
  /** Half-open with its one probe out: the next outcome reported is the probe's. */
  private probing = false;
  private ejectedUntil = 0;
  /** When it came back into service (its probe succeeded): the ejection count decays from here. */
  private backAt = 0;
  /** The latency estimate (ms) as of `observedAt`; NaN until the first counted response. */
  private estimate = Number.NaN;
  private observedAt = 0;
  /** Whether the first response has been seen (and left out: see observe()). */
  private warm = false;

  constructor(
    public endpoint: EndpointView,
    private readonly group: OutlierGroup = alone,
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

  /** Out of rotation by outlier detection: ejected, or half-open with its probe out. */
  ejected(now: number): boolean {
    return this.out || now < this.ejectedUntil;
  }

  /**
   * Handed to a connection or request. Half-open (its ejection over): this one is the probe,
   * and the endpoint is out again until it reports, or for one more ejection if it never does.
   */
  taken(now: number): void {
    if (!this.out) return;
    this.probing = true;
    this.ejectedUntil = now + ejectionMs(this.group.outlier, this.ejections);
  }

  /** A connection was made, or a response other than a 5xx came back. */
  succeeded(): void {
    this.failures = 0;
    // Out, and not probed yet: a late answer to a request sent before the ejection proves
    // nothing about the endpoint now.
    if (!this.probing) return;
    // The probe succeeded: back in rotation; its ejection count decays from now.
    this.out = false;
    this.probing = false;
    this.ejectedUntil = 0;
    this.backAt = this.group.now();
  }

  /**
   * A connect failure, a reset, or a 5xx answer. Returns true when this failure ejected the
   * endpoint (or, for a failed probe, ejected it again, for longer).
   */
  failed(now: number): boolean {
    const o = this.group.outlier;
    if (this.out) {
      // Already out: a late failure of a request sent before the ejection changes nothing.
      if (!this.probing) return false;
      // The probe failed: the endpoint has not shown it recovered; the next probe is one more
      // (longer) ejection away.
      this.probing = false;
      this.ejections += 1;
      this.ejectedUntil = now + ejectionMs(o, this.ejections);
      return true;
    }
    this.failures += 1;
    if (this.failures < o.consecutiveFailures) return false;
    // Kept at the threshold when the pool may not lose it now: the next failure asks again.
    if (!this.group.mayEject(this, now)) return false;
    this.ejections = decayedEjections(o, this.ejections, now - this.backAt) + 1;
    this.out = true;
    this.ejectedUntil = now + ejectionMs(o, this.ejections);
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
}
