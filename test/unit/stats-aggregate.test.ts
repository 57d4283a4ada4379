// The control plane's view of the agents' reports: exact merges across agents, percentiles
// from merged buckets, a sliding window that ages out agents that went away, and reports over
// the bounds refused (src/controlplane/stats/).
import { describe, expect, it } from 'vitest';
import type { StatsReport, StatsSeries } from '../../src/api/stats-messages.js';
import { aggregateStats } from '../../src/controlplane/stats/stats-aggregate.js';
import { reportProblem, StatsBook } from '../../src/controlplane/stats/stats-book.js';
import {
  addBuckets,
  emptyBuckets,
  LATENCY_BOUNDS_MS,
  quantileMs,
} from '../../src/telemetry/latency-histogram.js';

/** Buckets with `n` requests in the bucket whose bound is `ms`. */
function at(ms: number, n: number): number[] {
  const b = emptyBuckets();
  b[LATENCY_BOUNDS_MS.indexOf(ms)] = n;
  return b;
}

function series(over: Partial<StatsSeries>): StatsSeries {
  return {
    kind: 'inbound',
    srcService: '',
    dstService: 'orders',
    route: '',
    requests: 0,
    successes: 0,
    latencyBuckets: emptyBuckets(),
    inFlight: 0,
    tcpOpened: 0,
    tcpOpen: 0,
    bytesIn: 0,
    bytesOut: 0,
    ...over,
  };
}

function report(list: StatsSeries[], seconds = 10): StatsReport {
  return {
    startUnixMs: 0,
    endUnixMs: seconds * 1000,
    series: list,
    foldedSeries: 0,
    latencyBoundsMs: [...LATENCY_BOUNDS_MS],
  };
}

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const view = (book: StatsBook, window: '1m' | 'last' = '1m', service = '') =>
  aggregateStats(book.reports(), { window, service, windowMs: book.windowMs, now: 0 });

describe('latency histograms', () => {
  it.each([
    { buckets: at(1, 100), q: 0.5, want: 0.75 },
    { buckets: at(10, 10), q: 0.99, want: 9.95 },
    { buckets: emptyBuckets(), q: 0.99, want: 0 },
    { buckets: [...emptyBuckets().slice(0, -1), 4], q: 0.5, want: 10_000 },
  ])('q$q of $buckets -> $want ms', ({ buckets, q, want }) => {
    expect(quantileMs(buckets, q)).toBeCloseTo(want, 3);
  });

  it('re-buckets counts from other bounds without losing any or making them faster', () => {
    const into = emptyBuckets();
    addBuckets(into, [3, 2, 1], [0.7, 30]);
    expect(into[LATENCY_BOUNDS_MS.indexOf(1)]).toBe(3);
    expect(into[LATENCY_BOUNDS_MS.indexOf(50)]).toBe(2);
    expect(into.at(-1)).toBe(1);
  });
});

describe('aggregateStats', () => {
  it('merges agents exactly: the p99 of the merged buckets, not an average of p99s', () => {
    const c = clock();
    const book = new StatsBook({ now: c.now });
    // node1: 99 fast requests; node2: 1 slow one. The mesh's p99 is fast; averaging the two
    // agents' p99s (1 ms and 1 s) would say half a second.
    book.add('node1', report([series({ requests: 99, successes: 99, latencyBuckets: at(1, 99) })]));
    book.add('node2', report([series({ requests: 1, successes: 0, latencyBuckets: at(1000, 1) })]));
    const [orders] = view(book).services;
    expect(orders).toMatchObject({ requests: 100, successes: 99, successRate: 0.99, nodes: 2 });
    expect(orders!.p99Ms).toBeLessThanOrEqual(1);
    expect(orders!.requestsPerSecond).toBeCloseTo(10, 3);
  });

  it('a rate is per agent over what its reports cover; gauges are the latest report', () => {
    const c = clock();
    const book = new StatsBook({ now: c.now });
    book.add('node1', report([series({ requests: 100, successes: 100, inFlight: 9 })]));
    c.advance(10_000);
    book.add('node1', report([series({ requests: 300, successes: 300, inFlight: 2 })]));
    const [orders] = view(book).services;
    expect(orders).toMatchObject({ requests: 400, inFlight: 2 });
    expect(orders!.requestsPerSecond).toBeCloseTo(20, 3);
    expect(view(book, 'last').services[0]).toMatchObject({ requests: 300, requestsPerSecond: 30 });
  });

  it('the numbers of an agent that went away age out of the window', () => {
    const c = clock();
    const book = new StatsBook({ now: c.now });
    book.add('node1', report([series({ requests: 10, successes: 10 })]));
    c.advance(59_000);
    expect(view(book).services).toHaveLength(1);
    c.advance(1_000);
    expect(view(book)).toMatchObject({ services: [], reportingNodes: 0 });
  });

  it('with a service: its own row, its routes and its callers only', () => {
    const book = new StatsBook();
    book.add(
      'node1',
      report([
        series({ requests: 5, successes: 5 }),
        series({ dstService: 'users', requests: 5, successes: 5 }),
        series({ kind: 'edge', srcService: 'web', requests: 5, successes: 5 }),
        series({ kind: 'edge', srcService: 'web', dstService: 'users', requests: 1 }),
        series({ kind: 'route', route: 'by-id', requests: 5, successes: 5 }),
      ]),
    );
    const v = view(book, '1m', 'orders');
    expect(v.services.map((r) => r.dstService)).toEqual(['orders']);
    expect(v.edges.map((r) => `${r.srcService}->${r.dstService}`)).toEqual(['web->orders']);
    expect(v.routes.map((r) => r.route)).toEqual(['by-id']);
  });
});

describe('the reports a control plane keeps', () => {
  it.each([
    { what: 'over 1,000 series', r: report(Array.from({ length: 1_001 }, () => series({}))) },
    { what: 'an unknown kind', r: report([series({ kind: 'sideways' as 'edge' })]) },
    { what: 'a negative count', r: report([series({ requests: -1 })]) },
    { what: 'more successes than requests', r: report([series({ requests: 1, successes: 2 })]) },
    { what: 'a long name', r: report([series({ dstService: 'x'.repeat(300) })]) },
  ])('refuses $what, saying why', ({ r }) => {
    expect(reportProblem(r)).toMatch(/./);
    const book = new StatsBook();
    expect(book.add('node1', r)).toBe(reportProblem(r));
    expect(book.reports().size).toBe(0);
  });

  it('keeps a bounded number of reports per node, however fast it sends', () => {
    const c = clock();
    const book = new StatsBook({ now: c.now });
    for (let i = 0; i < 500; i++) {
      book.add('node1', report([series({ requests: 1, successes: 1 })], 0.1));
      c.advance(100);
    }
    expect(book.reports().get('node1')!.length).toBeLessThanOrEqual(61);
  });
});
