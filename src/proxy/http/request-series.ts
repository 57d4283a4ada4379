// Plain per-label-set cells for the per-request metrics, rendered through prom-client's registry
// at scrape time. prom-client's inc()/observe() hash and validate the label object on every call
// (about 3.5 % of an agent's CPU on the L7 path); here a request finds its cell by one string key
// and adds to numbers. The exposition is prom-client's own: the same values, labels and order.
import type { Registry } from 'prom-client';

/** A series' label names and values (prom-client reads the object's own fields in order). */
export type Labels = object;

/** A counter's or gauge's series: its labels and its value. */
export interface ValueCell {
  readonly labels: Labels;
  value: number;
}

/** A histogram's series: per-bucket (not cumulative) counts in the order of the bounds. */
export interface HistogramCell {
  readonly labels: Labels;
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** What a registry asks of a metric (prom-client's Metric, as the registry uses it). */
interface Collected {
  name: string;
  help: string;
  type: string;
  values: object[];
  aggregator: 'sum';
}

/**
 * A family of cells in the order their label sets first appeared (prom-client lists series in
 * that order). `key` must be one string per label set; `labels` makes the set on first use.
 */
abstract class Family<C extends { readonly labels: Labels }> {
  protected readonly cells = new Map<string, C>();
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  cell(key: string, labels: () => Labels): C {
    let c = this.cells.get(key);
    if (c === undefined) {
      c = this.make(labels());
      this.cells.set(key, c);
    }
    return c;
  }

  /** Every cell, for readers off the request path (the stats report): no copy is made. */
  forEach(visit: (cell: C) => void): void {
    for (const c of this.cells.values()) visit(c);
  }

  /** As prom-client's reset(): every series goes. */
  reset(): void {
    this.cells.clear();
  }

  protected abstract make(labels: Labels): C;
}

/** A counter or a gauge: the caller adds to value (a counter never subtracts). */
export class ValueFamily extends Family<ValueCell> {
  constructor(
    name: string,
    help: string,
    readonly type: 'counter' | 'gauge',
    registry: Registry,
  ) {
    super(name, help, registry);
  }

  protected make(labels: Labels): ValueCell {
    return { labels, value: 0 };
  }

  async get(): Promise<Collected> {
    const values = [...this.cells.values()].map((c) => ({ value: c.value, labels: c.labels }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
}

/** A histogram with fixed upper bounds; observe() as prom-client's (value <= bound). */
export class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    super(name, help, registry);
  }

  protected make(labels: Labels): HistogramCell {
    return { labels, buckets: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
  }

  observe(c: HistogramCell, value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (c.buckets[i] as number)++;
        break;
      }
    }
    c.sum += value;
    c.count += 1;
  }

  /** The registry's text exposition reads this form: `le` first, then the series' labels. */
  async getForPromString(): Promise<Collected> {
    const values: object[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.cells.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.buckets[i] as number;
        values.push(pair({ le: this.bounds[i] }, acc, bucket, c.labels, null));
      }
      values.push(
        pair({ le: '+Inf' }, c.count, bucket, c.labels, null),
        pair({}, c.sum, `${this.name}_sum`, c.labels, undefined),
        pair({}, c.count, `${this.name}_count`, c.labels, undefined),
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  /** JSON (getMetricsAsJSON): the labels merged, as prom-client's get(). */
  async get(): Promise<Collected> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => {
      const { sharedLabels, labels, ...rest } = v as ReturnType<typeof pair>;
      return { ...rest, labels: { ...labels, ...sharedLabels } };
    });
    return data;
  }
}

/** One line's value as prom-client's histogram makes it (exemplars: none, null on buckets). */
function pair(
  labels: Record<string, unknown>,
  value: number,
  metricName: string,
  shared: Labels,
  exemplar: null | undefined,
) {
  return { labels, sharedLabels: shared, value, metricName, exemplar };
}
