// The overload stage of the inbound HTTP stack: per local (destination) service whose
// TrafficPolicy sets adaptiveConcurrency, a gradient limit (adaptive-limit.ts) on the requests
// in flight to its app, with QoS classes (adaptive-admission.ts) deciding who is shed first.
// The limit is compiled when a snapshot brings a new policy object and kept (with what it has
// learnt) while the policy's settings stay the same. A service without the field costs one map
// read per request. Metrics: the limit and minRTT per service, sheds per service and class.
import type { Registry } from 'prom-client';
import { parseDuration } from '../../api/duration-text.js';
import type { TrafficPolicySpec } from '../../api/resources/index.js';
import { Counter, Gauge } from '../../telemetry/prom.js';
import { admits, classOf, NO_QOS, type QosClass, type QosPolicy } from './adaptive-admission.js';
import { type Admitted, GradientLimit, type GradientOptions } from './adaptive-limit.js';

type AdaptiveSpec = NonNullable<TrafficPolicySpec['adaptiveConcurrency']>;
type QosSpec = NonNullable<TrafficPolicySpec['qos']>;

/** One local service's limit and classes. */
export interface ServiceOverload {
  readonly service: string;
  readonly limit: GradientLimit;
  readonly qos: QosPolicy;
  /** Critical requests in flight (the limit counts all of them). */
  readonly critical: { inFlight: number };
  /** The settings it was built from (JSON): a snapshot with the same ones keeps it all. */
  readonly key: string;
  /** adaptiveConcurrency's alone: a change of qos only keeps the limit and what it learnt. */
  readonly limitKey: string;
}

/** A request admitted under the limit: say when its app answered, and when it is over. */
export interface OverloadTicket {
  /** The app's response head arrived: its latency is a sample. */
  answered(): void;
  /** The request is over (its response ended, or it failed): the slot is free. */
  release(): void;
}

export type OverloadDecision =
  | { kind: 'admit'; ticket: OverloadTicket }
  | { kind: 'shed'; qosClass: QosClass; limit: number; detail: string };

export interface OverloadOptions {
  registry?: Registry;
  now?: () => number;
  random?: () => number;
}

interface Entry {
  spec: TrafficPolicySpec;
  value: ServiceOverload | undefined;
}

export class AdaptiveConcurrency {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly entries = new Map<string, Entry>();
  private readonly shed: Counter<'dst_service' | 'qos_class'> | undefined;

  constructor(opts: OverloadOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    const registry = opts.registry;
    if (registry === undefined) return;
    const registers = [registry];
    this.shed = new Counter({
      name: 'weft_http_overload_shed_total',
      help: 'Inbound HTTP requests shed by adaptive concurrency (503 overloaded), by QoS class',
      labelNames: ['dst_service', 'qos_class'],
      registers,
    });
    const live = () => [...this.entries.values()].flatMap((e) => (e.value ? [e.value] : []));
    new Gauge({
      name: 'weft_http_adaptive_concurrency_limit',
      help: 'The adaptive concurrency limit of a local service (minConcurrency while its minRTT is measured)',
      labelNames: ['dst_service'],
      registers,
      collect() {
        this.reset();
        for (const s of live()) this.set({ dst_service: s.service }, s.limit.current());
      },
    });
    new Gauge({
      name: 'weft_http_adaptive_concurrency_min_rtt_seconds',
      help: "A local service's unloaded latency as adaptive concurrency last measured it",
      labelNames: ['dst_service'],
      registers,
      collect() {
        this.reset();
        for (const s of live()) {
          const ms = s.limit.minRttMs;
          if (ms !== undefined) this.set({ dst_service: s.service }, ms / 1000);
        }
      },
    });
  }

  /**
   * The service's limit under `spec` (its TrafficPolicy in the current snapshot); undefined
   * when the policy sets no adaptiveConcurrency. One map read per request with a policy.
   */
  forService(service: string, spec: TrafficPolicySpec | undefined): ServiceOverload | undefined {
    if (spec === undefined) return undefined;
    const entry = this.entries.get(service);
    if (entry?.spec === spec) return entry.value;
    const value = this.compile(service, spec, entry?.value);
    this.entries.set(service, { spec, value });
    return value;
  }

  /** Admit a request from `sourceService` to `service`, or shed it; undefined: no limit set. */
  admit(
    service: string,
    spec: TrafficPolicySpec | undefined,
    sourceService: string,
  ): OverloadDecision | undefined {
    const s = this.forService(service, spec);
    if (s === undefined) return undefined;
    const cls = classOf(sourceService, s.qos);
    const { limit, critical } = s;
    const current = limit.current();
    const inFlight = { all: limit.inFlight, critical: critical.inFlight };
    if (!admits(cls, inFlight, current, s.qos)) {
      this.shed?.inc({ dst_service: service, qos_class: cls });
      const measuring = limit.measuring ? ' while its unloaded latency is measured' : '';
      return {
        kind: 'shed',
        qosClass: cls,
        limit: current,
        detail: `${service} is overloaded: ${limit.inFlight} requests in flight, limit ${current}${measuring} (${cls} request shed)`,
      };
    }
    if (cls !== 'critical') return { kind: 'admit', ticket: new Ticket(limit, limit.start()) };
    critical.inFlight += 1;
    return { kind: 'admit', ticket: new Ticket(limit, limit.start(), critical) };
  }

  private compile(
    service: string,
    spec: TrafficPolicySpec,
    before: ServiceOverload | undefined,
  ): ServiceOverload | undefined {
    const a = spec.adaptiveConcurrency;
    if (a === undefined) return undefined;
    const limitKey = JSON.stringify(a);
    const key = `${limitKey}|${JSON.stringify(spec.qos ?? null)}`;
    if (before?.key === key) return before;
    const keep = before?.limitKey === limitKey;
    return {
      service,
      limit: keep ? before.limit : new GradientLimit(gradientOptions(a, this.now, this.random)),
      critical: keep ? before.critical : { inFlight: 0 },
      qos: qosPolicy(spec.qos),
      key,
      limitKey,
    };
  }
}

class Ticket implements OverloadTicket {
  private released = false;

  constructor(
    private readonly limit: GradientLimit,
    private readonly admitted: Admitted,
    /** Set for a critical request: its count too. */
    private readonly critical?: { inFlight: number },
  ) {}

  answered(): void {
    this.limit.answered(this.admitted);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.limit.release();
    if (this.critical !== undefined) this.critical.inFlight -= 1;
  }
}

/** The schema's fields (defaults filled in) as the limit's options. */
export function gradientOptions(
  a: AdaptiveSpec,
  now: () => number,
  random: () => number,
): GradientOptions {
  return {
    minConcurrency: a.minConcurrency,
    maxConcurrency: a.maxConcurrency,
    windowMs: parseDuration(a.sampleWindow)!,
    percentile: a.samplePercentile,
    minRttIntervalMs: parseDuration(a.minRtt.interval)!,
    minRttRequests: a.minRtt.requests,
    jitterPercent: a.minRtt.jitterPercent,
    bufferPercent: a.minRtt.bufferPercent,
    now,
    random,
  };
}

export function qosPolicy(q: QosSpec | undefined): QosPolicy {
  if (q === undefined) return NO_QOS;
  const classes = new Map<string, QosClass>();
  for (const name of q.classes.critical ?? []) classes.set(name, 'critical');
  for (const name of q.classes.sheddable ?? []) classes.set(name, 'sheddable');
  return {
    classes,
    standardPercent: q.limitPercent.standard,
    sheddablePercent: q.limitPercent.sheddable,
  };
}
