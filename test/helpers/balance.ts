// Balancer test helpers: endpoint views, a seeded random source, and a request simulator that
// drives a pool with a fake clock (requests in flight, latencies observed when they answer).
import type { EndpointView } from '../../src/controlplane-client/mesh-view.js';
import type { EndpointPool } from '../../src/proxy/balance/endpoint-pool.js';
import type { EndpointState } from '../../src/proxy/balance/endpoint-state.js';
import type { OutlierDetection } from '../../src/proxy/balance/outlier.js';

export function ep(name: string, extra: Partial<EndpointView> = {}): EndpointView {
  return {
    workload: name,
    service: 'echo',
    node: name,
    address: '10.0.0.1',
    port: 8080,
    health: 'healthy',
    weight: 1,
    zone: undefined,
    ...extra,
  };
}

/**
 * Outlier detection settings for a test: by default one failure ejects for 1 s (n x 1 s, up to
 * 8 s), any share of the pool may go, and the ejection count never decays.
 */
export function outlier(extra: Partial<OutlierDetection> = {}): OutlierDetection {
  return {
    consecutiveFailures: 1,
    intervalMs: 3_600_000,
    baseEjectionMs: 1_000,
    maxEjectionMs: 8_000,
    maxEjectionPercent: 100,
    ...extra,
  };
}

/** mulberry32: a small seeded generator, so that a run's picks are the same every time. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fake clock the pool reads; the simulator moves it. */
export interface FakeClock {
  now: number;
}

interface InFlight {
  state: EndpointState;
  doneAt: number;
  latency: number;
}

/**
 * Sends one request every `intervalMs` of fake time through `pool.pick` (as the HTTP stack
 * does: `active` up while in flight, `observe` when the response's headers arrive after the
 * endpoint's current latency), and returns how many of them each endpoint got.
 */
export function simulate(
  pool: EndpointPool,
  clock: FakeClock,
  opts: { requests: number; intervalMs: number; latencyOf: (key: string, now: number) => number },
): Map<string, number> {
  const counts = new Map<string, number>();
  const inFlight: InFlight[] = [];
  const settle = (until: number) => {
    inFlight.sort((x, y) => x.doneAt - y.doneAt);
    while (inFlight.length > 0 && inFlight[0]!.doneAt <= until) {
      const done = inFlight.shift()!;
      clock.now = done.doneAt;
      done.state.active -= 1;
      done.state.observe(done.latency, clock.now);
    }
    clock.now = until;
  };
  for (let i = 0; i < opts.requests; i++) {
    settle(clock.now + opts.intervalMs);
    const state = pool.pick(undefined, { request: true });
    if (!state) throw new Error('the pool had no usable endpoint');
    state.active += 1;
    const latency = opts.latencyOf(state.key, clock.now);
    inFlight.push({ state, latency, doneAt: clock.now + latency });
    counts.set(state.key, (counts.get(state.key) ?? 0) + 1);
  }
  settle(Math.max(clock.now, ...inFlight.map((f) => f.doneAt)));
  return counts;
}

/** The share (0..1) of `key` among all counted picks. */
export function share(counts: Map<string, number>, key: string): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return (counts.get(key) ?? 0) / total;
}
