// Authorization denials (and failed requests) on their way to the dashboard: the agent keeps the newest, bounded,
// hands a report at most 20 (counting the rest), takes back those of a report that found no
// stream; the control plane refuses reports over the bounds and lists the mesh's newest first.
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startStatsReporter } from '../../src/agent/stats-reporter.js';
import type { StatsReport } from '../../src/api/stats-messages.js';
import { recentDenials, recentErrors } from '../../src/controlplane/stats/events-view.js';
import { type ReceivedReport, reportProblem } from '../../src/controlplane/stats/stats-book.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import type { RequestRecord } from '../../src/proxy/records.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { RecentDenials } from '../../src/telemetry/recent-denials.js';
import { failed, RecentErrors } from '../../src/telemetry/recent-errors.js';
import { REPORT_EVENTS } from '../../src/telemetry/recent-events.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });

function deny(ring: RecentDenials, n: number, from = 0): void {
  for (let i = from; i < from + n; i++)
    ring.add({
      direction: 'inbound',
      source: 'spiffe://td/svc/web',
      destination: 'echo',
      reason: `rule ${i}`,
      method: 'GET',
      path: `/admin/${i}`,
    });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('RecentDenials', () => {
  it('hands over what it holds once', () => {
    const ring = new RecentDenials(() => 7);
    deny(ring, 3);
    const taken = ring.take();
    expect(taken.omitted).toBe(0);
    expect(taken.events.map((d) => d.reason)).toEqual(['rule 0', 'rule 1', 'rule 2']);
    expect(taken.events[0]).toMatchObject({ atUnixMs: 7, destination: 'echo', path: '/admin/0' });
    expect(ring.take()).toEqual({ events: [], omitted: 0 });
  });

  it('gives a report the newest 20 and counts the rest, however many came', () => {
    const ring = new RecentDenials();
    deny(ring, 1000);
    const taken = ring.take();
    expect(taken.events).toHaveLength(REPORT_EVENTS);
    expect(taken.events.at(-1)?.reason).toBe('rule 999');
    expect(taken.events.length + taken.omitted).toBe(1000);
  });

  it('takes back the denials of a report that was not sent, newest kept', () => {
    const ring = new RecentDenials();
    deny(ring, 5);
    const first = ring.take();
    deny(ring, 2, 5);
    ring.giveBack(first);
    const again = ring.take();
    expect(again.events.map((d) => d.reason)).toEqual([
      'rule 0',
      'rule 1',
      'rule 2',
      'rule 3',
      'rule 4',
      'rule 5',
      'rule 6',
    ]);
    expect(again.omitted).toBe(0);
  });

  it('clips a hostile path', () => {
    const ring = new RecentDenials();
    ring.add({
      direction: 'inbound',
      source: 'unknown',
      destination: 'echo',
      reason: 'no rule',
      path: `/${'a'.repeat(10_000)}`,
    });
    expect(ring.take().events[0]?.path.length).toBe(256);
  });

  it('is fed by the data path only for denials, with who and what', () => {
    const ring = new RecentDenials();
    const telemetry = new Telemetry(new Registry(), log, ring);
    telemetry.decision('inbound', 'echo', true);
    telemetry.decision('inbound', 'echo', false, {
      source: 'spiffe://td/svc/web',
      reason: 'denied by echo-admin',
      method: 'DELETE',
      path: '/admin',
    });
    expect(ring.take().events).toEqual([
      expect.objectContaining({
        direction: 'inbound',
        source: 'spiffe://td/svc/web',
        destination: 'echo',
        method: 'DELETE',
        path: '/admin',
      }),
    ]);
  });
});

describe('the stats reporter and denials', () => {
  it('sends denials with the report, and keeps them when no stream took it', async () => {
    vi.useFakeTimers({ now: 100_000 });
    const ring = new RecentDenials();
    const tried: StatsReport[] = [];
    let connected = false;
    const reporter = startStatsReporter({
      registry: new Registry(),
      session: {
        sendStats: (r) => {
          tried.push(r);
          return connected;
        },
        sendHostFacts: () => {},
      },
      intervalMs: 10_000,
      log,
      denials: ring,
    });
    deny(ring, 2);
    await vi.advanceTimersByTimeAsync(10_000);
    await waitFor('a report tried', async () => tried.length === 1, 5_000);
    connected = true;
    await vi.advanceTimersByTimeAsync(10_000);
    await waitFor('a report sent', async () => tried.length === 2, 5_000);
    expect(tried[1]?.denials?.map((d) => d.reason)).toEqual(['rule 0', 'rule 1']);
    await vi.advanceTimersByTimeAsync(10_000);
    await waitFor('a third report', async () => tried.length === 3, 5_000);
    expect(tried[2]?.denials).toEqual([]);
    reporter.stop();
  });
});

const report = (denials: StatsReport['denials'], omitted = 0): StatsReport => ({
  startUnixMs: 0,
  endUnixMs: 1,
  series: [],
  foldedSeries: 0,
  latencyBoundsMs: [],
  denials,
  denialsOmitted: omitted,
});

const denial = (at: number, reason: string) => ({
  atUnixMs: at,
  direction: 'inbound',
  source: 'unknown',
  destination: 'echo',
  reason,
  method: '',
  path: '',
});

describe('denials at the control plane', () => {
  it('refuses a report over the bounds', () => {
    expect(reportProblem(report([denial(1, 'x')]))).toBeUndefined();
    expect(reportProblem(report(Array.from({ length: 65 }, () => denial(1, 'x'))))).toMatch(
      /64 denials/,
    );
    expect(reportProblem(report([denial(1, 'x'.repeat(2000))]))).toMatch(/over 1024/);
  });

  it('lists the mesh newest first, with the node, counting what the reports left out', () => {
    const received = (node: string, r: StatsReport): ReceivedReport => ({
      node,
      atMs: 0,
      intervalMs: 1,
      report: r,
    });
    const reports = new Map([
      ['node1', [received('node1', report([denial(10, 'a'), denial(30, 'c')], 5))]],
      ['node2', [received('node2', report([denial(20, 'b')]))]],
      ['node3', [received('node3', report(undefined))]],
    ]);
    const { denials, total } = recentDenials(reports, 2);
    expect(denials.map((d) => [d.node, d.reason])).toEqual([
      ['node1', 'c'],
      ['node2', 'b'],
    ]);
    expect(total).toBe(8);
  });
});

describe('failed requests for the dashboard', () => {
  const request = (over: Partial<RequestRecord>): RequestRecord => ({
    direction: 'outbound',
    src_service: 'client',
    dst_service: 'echo',
    src: '10.0.0.1:5000',
    close_reason: 'done',
    route: 'default',
    method: 'GET',
    authority: 'echo.mesh',
    path: '/',
    protocol: 'HTTP/1.1',
    status: 200,
    request_bytes: 0,
    response_bytes: 0,
    ...over,
  });

  it.each([
    [{ status: 200 }, false],
    [{ status: 404 }, false],
    [{ status: 500 }, true],
    [{ status: 503 }, true],
    [{ status: 0 }, true],
    [{ status: 200, grpc_status: 0 }, false],
    [{ status: 200, grpc_status: 14 }, true],
  ])('%o failed: %s', (over, bad) => {
    expect(failed(request(over))).toBe(bad);
  });

  it('keeps what the calling agent saw fail, once per request', () => {
    const errors = new RecentErrors(() => 9);
    const telemetry = new RequestTelemetry(new Registry(), log, undefined, errors);
    const finish = (over: Partial<RequestRecord>) => {
      const r = request(over);
      telemetry.start(r);
      telemetry.finish(r, process.hrtime.bigint());
    };
    finish({ status: 200 });
    finish({ status: 503, close_reason: 'no_healthy_endpoint', error: 'no endpoint is ready' });
    finish({ direction: 'inbound', status: 500 }); // the caller's agent lists it
    expect(errors.take().events).toEqual([
      {
        atUnixMs: 9,
        source: 'client',
        destination: 'echo',
        method: 'GET',
        path: '/',
        status: 503,
        grpcStatus: -1,
        reason: 'no_healthy_endpoint',
        detail: 'no endpoint is ready',
        endpoint: '',
      },
    ]);
  });

  it('are listed newest first across the mesh and bounded per report', () => {
    const error = (at: number) => ({
      atUnixMs: at,
      source: 'client',
      destination: 'echo',
      method: 'GET',
      path: '/',
      status: 500,
      grpcStatus: -1,
      reason: 'done',
      detail: '',
      endpoint: '',
    });
    const r = { ...report([]), errors: [error(1), error(3)], errorsOmitted: 4 };
    const reports = new Map([
      ['node1', [{ node: 'node1', atMs: 0, intervalMs: 1, report: r }]],
      [
        'node2',
        [{ node: 'node2', atMs: 0, intervalMs: 1, report: { ...report([]), errors: [error(2)] } }],
      ],
    ]);
    const { errors, total } = recentErrors(reports, 10);
    expect(errors.map((e) => [e.node, e.atUnixMs])).toEqual([
      ['node1', 3],
      ['node2', 2],
      ['node1', 1],
    ]);
    expect(total).toBe(7);
    expect(reportProblem({ ...r, errors: Array.from({ length: 65 }, () => error(1)) })).toMatch(
      /64 errors/,
    );
  });
});
