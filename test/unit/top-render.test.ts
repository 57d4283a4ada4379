// `weft top`'s screen from rows (src/cli/commands/top-render.ts): widths, order, shortened
// names, the height limit, and a service's routes and callers.
import { describe, expect, it } from 'vitest';
import type { GetStatsResponse, StatsRow } from '../../src/api/stats-messages.js';
import { renderTop, shorten } from '../../src/cli/commands/top-render.js';

function row(over: Partial<StatsRow>): StatsRow {
  return {
    srcService: '',
    dstService: 'orders',
    route: '',
    requestsPerSecond: 0,
    requests: 0,
    successes: 0,
    successRate: 0,
    p50Ms: 0,
    p90Ms: 0,
    p99Ms: 0,
    inFlight: 0,
    tcpOpened: 0,
    tcpOpen: 0,
    bytesIn: 0,
    bytesOut: 0,
    nodes: 1,
    latencyBuckets: [],
    ...over,
  };
}

function stats(over: Partial<GetStatsResponse>): GetStatsResponse {
  return {
    window: '1m',
    windowSeconds: 60,
    services: [],
    edges: [],
    routes: [],
    latencyBoundsMs: [],
    reportingNodes: 2,
    foldedSeries: 0,
    generatedUnixMs: 0,
    ...over,
  };
}

const busy = row({
  dstService: 'orders',
  requestsPerSecond: 12.5,
  requests: 750,
  successes: 744,
  successRate: 0.992,
  p50Ms: 1.25,
  p99Ms: 48,
  inFlight: 3,
});
const quiet = row({
  dstService: 'users',
  requestsPerSecond: 0.05,
  requests: 3,
  successes: 3,
  successRate: 1,
  p50Ms: 0.4,
  p99Ms: 2,
});
const base = { server: '10.0.0.1:15012', clock: '15:04:05' };

describe('renderTop', () => {
  it('services, busiest first, numbers right-aligned in 80 columns', () => {
    const lines = renderTop({ ...base, stats: stats({ services: [quiet, busy] }) }, 80, 24);
    expect(lines).toEqual([
      'weft top: services (window 1m, 2 nodes)  15:04:05',
      'control plane 10.0.0.1:15012   q: quit',
      '',
      'SERVICE                                     RATE  SUCCESS     P50     P99 FLIGHT',
      'orders                                    12.5/s   99.20%   1.3ms    48ms      3',
      'users                                     0.05/s  100.00%   0.4ms   2.0ms      0',
    ]);
    for (const l of lines) expect([...l].length).toBeLessThanOrEqual(80);
  });

  it.each([
    { width: 80, height: 24 },
    { width: 60, height: 10 },
    { width: 120, height: 40 },
  ])('fits $width x $height, with long names and many rows', ({ width, height }) => {
    const many = Array.from({ length: 50 }, (_, i) =>
      row({ dstService: `a-very-long-service-name-for-the-billing-team-${i}`, requests: 1 }),
    );
    const lines = renderTop({ ...base, stats: stats({ services: many }) }, width, height);
    expect(lines.length).toBeLessThanOrEqual(height);
    for (const l of lines) expect([...l].length).toBeLessThanOrEqual(width);
    expect(lines.at(-1)).toMatch(/^… \d+ more lines/);
  });

  it('a service: its own row, then its routes and its callers', () => {
    const lines = renderTop(
      {
        ...base,
        service: 'orders',
        stats: stats({
          services: [busy],
          routes: [row({ route: 'by-id', requests: 5, requestsPerSecond: 1, successRate: 1 })],
          edges: [row({ srcService: 'web', requests: 5, requestsPerSecond: 1, successRate: 0.8 })],
        }),
      },
      80,
      24,
    );
    expect(lines[0]).toBe('weft top: service orders (window 1m, 2 nodes)  15:04:05');
    expect(
      lines.filter((l) => /^(SERVICE|ROUTE|CALLER) /.test(l)).map((l) => l.split(' ')[0]),
    ).toEqual(['SERVICE', 'ROUTE', 'CALLER']);
    expect(lines.some((l) => /^by-id\s+1\.00\/s\s+100\.00%/.test(l))).toBe(true);
    expect(lines.some((l) => /^web\s+1\.00\/s\s+80\.00%/.test(l))).toBe(true);
  });

  it('before the first answer, and after a failure, says so', () => {
    expect(renderTop({ ...base, stats: undefined }, 80, 24)).toContain('(waiting for numbers)');
    const failed = renderTop(
      { ...base, stats: stats({}), error: 'WEFT_E_UNAVAILABLE: down' },
      80,
      24,
    );
    expect(failed[1]).toBe('! WEFT_E_UNAVAILABLE: down');
    expect(failed).toContain('(no traffic in the window)');
  });
});

describe('shorten', () => {
  it.each([
    { name: 'orders', width: 10, want: 'orders' },
    { name: 'orders-backend-eu-west', width: 10, want: 'orders…est' },
    { name: 'abcdef', width: 1, want: 'a' },
    { name: 'abcdef', width: 2, want: 'a…' },
  ])('$name in $width -> $want', ({ name, width, want }) => {
    expect(shorten(name, width)).toBe(want);
    expect([...shorten(name, width)].length).toBeLessThanOrEqual(width);
  });
});
