// Power of two choices over peak-EWMA latency (Finagle's and Linkerd's default balancer): of
// two distinct endpoints drawn at random, the cheaper one, cost = latency x (in flight + 1) /
// weight. Two draws instead of a scan keep a pick O(1) and avoid herding every caller onto
// the one endpoint that looks best (Mitzenmacher, "The Power of Two Choices").
import type { Balancer, PickContext, Random } from './balancer.js';
import type { EndpointState } from './endpoint-state.js';

// A floor under the latency estimate: an estimate of 0 (decayed away, or a sub-millisecond
// answer timed coarsely) would make the cost 0 whatever the load, and send it every request.
const MIN_LATENCY_MS = 0.001;

export class P2cEwma implements Balancer {
  constructor(private readonly random: Random) {}

  pick(candidates: readonly EndpointState[], _ctx: PickContext, now: number): EndpointState {
    const n = candidates.length;
    if (n === 1) return candidates[0]!;
    const i = Math.min(n - 1, Math.floor(this.random() * n));
    let j = Math.min(n - 2, Math.floor(this.random() * (n - 1)));
    if (j >= i) j += 1;
    const a = candidates[i]!;
    const b = candidates[j]!;
    // An endpoint not measured yet is given its rival's latency: neutral, so that load alone
    // decides and a new endpoint is tried at once instead of waiting for a decay.
    const la = a.latency(now);
    const lb = b.latency(now);
    return cost(b, lb ?? la) < cost(a, la ?? lb) ? b : a;
  }
}

function cost(s: EndpointState, latency: number | undefined): number {
  return (Math.max(latency ?? 1, MIN_LATENCY_MS) * (s.active + 1)) / s.weight;
}
