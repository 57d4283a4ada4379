// Power of two choices over peak-EWMA latency (Finagle's and Linkerd's default balancer): of
// two distinct endpoints drawn at random, the cheaper one, cost = latency x (in flight + 1) /
// weight. Two draws instead of a scan keep a pick O(1) and avoid herding every caller onto
// the one endpoint that looks best (Mitzenmacher, "The Power of Two Choices").
import type { Balancer, PickContext, Random } from './balancer.js';
import type { EndpointState } from './endpoint-state.js';

// A floor under the latency estimate: latencies below it are not told apart. Between endpoints
// that answer within a few milliseconds the difference is the proxies' own warm-up (V8
// compiling the path an endpoint's traffic takes), GC and scheduling, not the endpoint: an
// endpoint that gets traffic gets faster, and without the floor it kept all of it (a gRPC
// channel with one call at a time sent 1,000 of 1,000 calls to one of two equal endpoints in
// the lab; with a 5 ms floor still 654; with 10 ms, a 20 ms pause of one agent on a loaded
// 2-core host still sent a whole 2 s run to the other). Endpoints slower by tens of ms are
// told apart as before, and load (in flight) still counts below it. It also keeps a decayed
// estimate of 0 from winning whatever the load.
export const MIN_LATENCY_MS = 25;

export class P2cEwma implements Balancer {
  /** When each endpoint was last picked (a pick count), for ties. */
  private readonly lastPicked = new WeakMap<EndpointState, number>();
  private picks = 0;

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
    const ca = cost(a, la ?? lb);
    const cb = cost(b, lb ?? la);
    // Costs this close are a tie, which goes to the endpoint picked less recently: between
    // equal endpoints the estimates differ by noise (a peak estimate is the largest sample of
    // the last seconds), and trusting it would send a caller with one request at a time all of
    // them to whichever endpoint looked a little faster, for as long as its rival's estimate
    // takes to decay. The tie goes to the endpoint left longest, by weight (picks since its
    // last x weight), not to a coin: even a few requests spread evenly, and by weight.
    const tie = Math.max(ca, cb) < Math.min(ca, cb) * TIE_RATIO;
    const chosen = tie ? this.leftLonger(a, b) : cb < ca ? b : a;
    this.picks += 1;
    this.lastPicked.set(chosen, this.picks);
    return chosen;
  }

  private leftLonger(a: EndpointState, b: EndpointState): EndpointState {
    const wait = (s: EndpointState) => (this.picks - (this.lastPicked.get(s) ?? 0)) * s.weight;
    return wait(b) > wait(a) ? b : a;
  }
}

/** Within this ratio two costs are equal; beyond it the cheaper endpoint gets the request. */
export const TIE_RATIO = 1.5;

function cost(s: EndpointState, latency: number | undefined): number {
  return (Math.max(latency ?? 1, MIN_LATENCY_MS) * (s.active + 1)) / s.weight;
}
