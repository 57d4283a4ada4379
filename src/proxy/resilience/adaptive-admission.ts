// QoS classes on the adaptive concurrency limit: which class a request is in (from its source
// service, as the mTLS peer identity proves it, never from a header an app could set) and
// whether the class may take one more slot. Lower classes are shed first: sheddable requests
// only below a share of the limit, standard ones below a larger share, critical ones whenever
// fewer critical ones than the limit are in flight. Pure decisions, table-tested.

export type QosClass = 'critical' | 'standard' | 'sheddable';

export interface QosPolicy {
  /** Source service -> its class; any other source (or none: "unknown") is standard. */
  classes: ReadonlyMap<string, QosClass>;
  /** Standard requests are admitted while in flight < limit * standard / 100. */
  standardPercent: number;
  /** Sheddable requests are admitted while in flight < limit * sheddable / 100. */
  sheddablePercent: number;
}

/** Without a qos policy every request is standard, and standard gets the whole limit. */
export const NO_QOS: QosPolicy = {
  classes: new Map(),
  standardPercent: 100,
  sheddablePercent: 100,
};

export function classOf(sourceService: string, qos: QosPolicy): QosClass {
  return qos.classes.get(sourceService) ?? 'standard';
}

/** Requests in flight to the service now: all of them, and the critical ones. */
export interface InFlight {
  all: number;
  critical: number;
}

/**
 * Whether one more request of this class fits under the limit. Critical requests count only
 * against each other: they take their slot even while lower classes hold the limit, and the
 * latency that adds shrinks the limit, which sheds the lower classes sooner.
 */
export function admits(cls: QosClass, inFlight: InFlight, limit: number, qos: QosPolicy): boolean {
  if (cls === 'critical') return inFlight.critical < limit;
  return inFlight.all < threshold(cls, limit, qos);
}

/** Requests in flight below which a lower class is admitted (never 0: an idle service serves). */
export function threshold(cls: QosClass, limit: number, qos: QosPolicy): number {
  if (cls === 'critical') return limit;
  const percent = cls === 'standard' ? qos.standardPercent : qos.sheddablePercent;
  return percent >= 100 ? limit : Math.max(1, (limit * percent) / 100);
}
