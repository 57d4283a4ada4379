// QoS classes on the adaptive concurrency limit: which class a request is in (from its source
// service, as the mTLS peer identity proves it, never from a header an app could set) and
// whether the class may take one more slot. Lower classes are shed first: sheddable requests
// only while few are in flight, standard ones below most of the limit, critical ones up to the
// whole limit (the share above standard's is theirs alone). Pure decisions, table-tested.

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

/** Whether one more request of this class fits under the limit. */
export function admits(cls: QosClass, inFlight: number, limit: number, qos: QosPolicy): boolean {
  if (cls === 'critical') return inFlight < limit;
  const percent = cls === 'standard' ? qos.standardPercent : qos.sheddablePercent;
  return inFlight < (limit * percent) / 100;
}
