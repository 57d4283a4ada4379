// Outlier detection's settings and its pure decisions (Envoy's consecutive-failure detector with
// Linkerd's single probe): how long an ejection lasts, whether one more endpoint may be
// ejected, and how the ejection count decays. EndpointState applies them; the pool counts.
import { parseDuration } from '../../api/duration-text.js';
import type { TrafficPolicySpec } from '../../api/resources/traffic-policy.js';
import { OUTLIER_DETECTION_DEFAULTS } from '../../api/resources/traffic-policy-defaults.js';

export interface OutlierDetection {
  /** Consecutive failures (connect failures, resets, 5xx answers) that eject an endpoint. */
  consecutiveFailures: number;
  /**
   * Envoy's sweep interval, applied lazily (no timer): each whole interval an endpoint spends
   * back in service takes one off its ejection count, so ejections close together grow longer
   * and an endpoint that stayed healthy starts again from baseEjectionTime.
   */
  intervalMs: number;
  /** The first ejection's length; the nth lasts n times this. */
  baseEjectionMs: number;
  /** The cap on an ejection's length: Envoy's max_ejection_time, 300 s or the base if longer. */
  maxEjectionMs: number;
  /** At most this share of the pool's endpoints is ejected at once (see mayEject). */
  maxEjectionPercent: number;
}

/** Envoy's max_ejection_time default. */
export const MAX_EJECTION_MS = 300_000;

/** The settings of TrafficPolicy.outlierDetection, the schema's defaults for what it leaves out. */
export function outlierDetectionOf(
  policy: TrafficPolicySpec['outlierDetection'] | undefined,
): OutlierDetection {
  return policy === undefined ? DEFAULT_OUTLIER_DETECTION : settingsOf(policy);
}

function settingsOf(p: NonNullable<TrafficPolicySpec['outlierDetection']>): OutlierDetection {
  const baseEjectionMs = parseDuration(p.baseEjectionTime) ?? 5_000;
  return {
    consecutiveFailures: p.consecutiveFailures,
    intervalMs: parseDuration(p.interval) ?? 10_000,
    baseEjectionMs,
    maxEjectionMs: Math.max(MAX_EJECTION_MS, baseEjectionMs),
    maxEjectionPercent: p.maxEjectionPercent,
  };
}

/** Without a TrafficPolicy: 5 failures, 10 s interval, 30 s base ejection, 10 % (Envoy's). */
export const DEFAULT_OUTLIER_DETECTION: OutlierDetection = settingsOf(OUTLIER_DETECTION_DEFAULTS);

export function sameOutlier(a: OutlierDetection, b: OutlierDetection): boolean {
  return (
    a.consecutiveFailures === b.consecutiveFailures &&
    a.intervalMs === b.intervalMs &&
    a.baseEjectionMs === b.baseEjectionMs &&
    a.maxEjectionPercent === b.maxEjectionPercent
  );
}

/** The length of ejection number `n` (from 1): n x base, capped (Envoy). */
export function ejectionMs(o: OutlierDetection, n: number): number {
  return Math.min(o.baseEjectionMs * n, o.maxEjectionMs);
}

/**
 * Whether one more endpoint may be ejected from a pool of `size` endpoints of which `ejected`
 * are out and `usable` (the candidate included) are in rotation. Envoy's rule: while the share
 * already ejected is under maxEjectionPercent (so with 10 % of 3 endpoints one may go, never a
 * second; 0 % ejects none). And never the last usable endpoint: where Envoy would route to every
 * host once too few are healthy (its panic threshold), weft keeps the last one in rotation, so a
 * service is never emptied by its callers' view alone.
 */
export function mayEject(
  o: OutlierDetection,
  pool: { size: number; ejected: number; usable: number },
): boolean {
  if (pool.usable <= 1) return false;
  return pool.ejected * 100 < o.maxEjectionPercent * pool.size;
}

/** The ejection count after `inServiceMs` back in service: one less per whole interval. */
export function decayedEjections(
  o: OutlierDetection,
  ejections: number,
  inServiceMs: number,
): number {
  if (ejections === 0 || inServiceMs < o.intervalMs) return ejections;
  return Math.max(0, ejections - Math.floor(inServiceMs / o.intervalMs));
}
