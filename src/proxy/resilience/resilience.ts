// What the outbound HTTP path keeps per destination service for timeouts and retries: the
// compiled policy (recompiled only when a snapshot brings a new TrafficPolicy object), the
// retry budget and the retries in flight (both kept across snapshots while the budget's
// parameters stay), and their metrics. The clock and the random source are injected.
import type { Registry } from 'prom-client';
import type { TrafficPolicySpec } from '../../api/resources/index.js';
import { Counter } from '../../telemetry/prom.js';
import { RetryBudget } from './budget.js';
import type { RetryReason } from './retry-decision.js';
import { compilePolicy, type ServicePolicy } from './retry-policy.js';

/** One destination service's policy and retry state. */
export interface ServiceResilience {
  readonly service: string;
  readonly policy: ServicePolicy;
  /** Set when the policy retries. */
  readonly budget: RetryBudget | undefined;
  /** Requests being retried now (circuitBreaker.maxRetries); shared across snapshots. */
  readonly retrying: { count: number };
}

/** Why a retry the policy allowed did not happen. */
export type RetryDenial = 'budget' | 'max_retries' | 'deadline';

/**
 * What became of a hedge: its answer was the client's (won), another attempt's was (lost), or
 * it was not sent because the budget or circuitBreaker.maxRetries said no (denied).
 */
export type HedgeOutcomeLabel = 'won' | 'lost' | 'denied';

/** Which timeout fired. */
export type TimeoutKind =
  | 'connect_timeout'
  | 'per_try_timeout'
  | 'request_timeout'
  | 'idle_timeout';

interface Entry {
  spec: TrafficPolicySpec;
  value: ServiceResilience | undefined;
}

export interface ResilienceOptions {
  now?: () => number;
  random?: () => number;
}

export class Resilience {
  readonly now: () => number;
  readonly random: () => number;
  private readonly entries = new Map<string, Entry>();
  private readonly retries: Counter<'dst_service' | 'route' | 'reason'>;
  private readonly denials: Counter<'dst_service' | 'route' | 'reason'>;
  private readonly timeouts: Counter<'dst_service' | 'route' | 'kind'>;
  private readonly hedges: Counter<'dst_service' | 'route' | 'outcome'>;
  /** Hedging's budget for a service whose TrafficPolicy does not retry (Linkerd's defaults). */
  private readonly hedgeBudgets = new Map<string, RetryBudget>();

  constructor(registry: Registry, opts: ResilienceOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    const registers = [registry];
    this.retries = new Counter({
      name: 'weft_http_retries_total',
      help: 'Outbound HTTP retries, by what the failed try did',
      labelNames: ['dst_service', 'route', 'reason'],
      registers,
    });
    this.denials = new Counter({
      name: 'weft_http_retries_denied_total',
      help: 'Retries the policy allowed but that did not happen: budget spent, circuitBreaker.maxRetries in flight, or no time left',
      labelNames: ['dst_service', 'route', 'reason'],
      registers,
    });
    this.timeouts = new Counter({
      name: 'weft_http_timeouts_total',
      help: 'Outbound HTTP requests or tries cut by a timeout, by which one',
      labelNames: ['dst_service', 'route', 'kind'],
      registers,
    });
    this.hedges = new Counter({
      name: 'weft_http_hedges_total',
      help: "Outbound HTTP hedges (extra attempts of a route rule's idempotent requests): whose answer the client got, or denied by the retry budget",
      labelNames: ['dst_service', 'route', 'outcome'],
      registers,
    });
  }

  /**
   * The budget a hedge spends: the service's retry budget when its TrafficPolicy retries (one
   * budget bounds retries and hedges together), else one of Linkerd's defaults (20 % plus 10
   * per second) kept per service for hedged requests only.
   */
  hedgeBudget(service: string, resilience: ServiceResilience | undefined): RetryBudget {
    if (resilience?.budget !== undefined) return resilience.budget;
    let budget = this.hedgeBudgets.get(service);
    if (budget === undefined) {
      budget = new RetryBudget({ percent: 20, minPerSecond: 10, now: this.now });
      this.hedgeBudgets.set(service, budget);
    }
    return budget;
  }

  hedged(service: string, route: string, outcome: HedgeOutcomeLabel): void {
    this.hedges.inc({ dst_service: service, route, outcome });
  }

  /**
   * The service's state under `spec` (its TrafficPolicy in the current snapshot); undefined
   * when the policy sets nothing the exchange enforces. One map read per request with a
   * policy; the compiled form is made again only when the snapshot's policy object changes.
   */
  forService(service: string, spec: TrafficPolicySpec | undefined): ServiceResilience | undefined {
    if (spec === undefined) return undefined;
    const entry = this.entries.get(service);
    if (entry?.spec === spec) return entry.value;
    const policy = compilePolicy(spec);
    const before = entry?.value;
    let value: ServiceResilience | undefined;
    if (policy !== undefined) {
      const r = policy.retry;
      const keep =
        r !== undefined &&
        before?.budget !== undefined &&
        before.policy.retry?.budgetPercent === r.budgetPercent &&
        before.policy.retry?.budgetMinPerSecond === r.budgetMinPerSecond;
      value = {
        service,
        policy,
        budget:
          r === undefined
            ? undefined
            : keep
              ? before!.budget
              : new RetryBudget({
                  percent: r.budgetPercent,
                  minPerSecond: r.budgetMinPerSecond,
                  now: this.now,
                }),
        retrying: before?.retrying ?? { count: 0 },
      };
    }
    this.entries.set(service, { spec, value });
    return value;
  }

  retried(service: string, route: string, reason: RetryReason): void {
    this.retries.inc({ dst_service: service, route, reason });
  }

  denied(service: string, route: string, reason: RetryDenial): void {
    this.denials.inc({ dst_service: service, route, reason });
  }

  timedOut(service: string, route: string, kind: TimeoutKind): void {
    this.timeouts.inc({ dst_service: service, route, kind });
  }
}
