// The agent's reporter (src/agent/stats-reporter.ts): a report every interval; one that found
// no stream is not lost: the next report covers its interval too, so an outage of the control
// plane loses no request from the numbers.
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startStatsReporter } from '../../src/agent/stats-reporter.js';
import type { StatsReport } from '../../src/api/stats-messages.js';
import { RequestTelemetry } from '../../src/proxy/http/request-telemetry.js';
import type { RequestRecord } from '../../src/proxy/records.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });

function serve(t: RequestTelemetry, n: number): void {
  for (let i = 0; i < n; i++) {
    const r: RequestRecord = {
      direction: 'inbound',
      src_service: 'web',
      dst_service: 'orders',
      src: '10.0.0.1:5000',
      close_reason: 'done',
      route: 'default',
      method: 'GET',
      authority: 'orders.mesh',
      path: '/',
      protocol: 'HTTP/1.1',
      status: 200,
      request_bytes: 0,
      response_bytes: 0,
    };
    t.start(r);
    t.finish(r, process.hrtime.bigint());
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('startStatsReporter', () => {
  it('keeps the counts of a report that found no stream for the next one', async () => {
    vi.useFakeTimers({ now: 100_000 });
    const registry = new Registry();
    const requests = new RequestTelemetry(registry, log);
    const tried: StatsReport[] = [];
    let connected = false;
    const reporter = startStatsReporter({
      registry,
      session: {
        sendStats: (r) => {
          tried.push(r);
          return connected;
        },
        sendHostFacts: () => {},
      },
      intervalMs: 10_000,
      log,
    });
    const orders = (r: StatsReport | undefined) =>
      r?.series.find((s) => s.kind === 'inbound' && s.dstService === 'orders')?.requests ?? 0;
    try {
      serve(requests, 5);
      await vi.advanceTimersByTimeAsync(10_000);
      await waitFor('the first report', () => tried.length === 1);
      expect(orders(tried[0])).toBe(5);
      serve(requests, 3);
      connected = true;
      await vi.advanceTimersByTimeAsync(10_000);
      await waitFor('the second report', () => tried.length === 2);
      // The unsent 5 and the new 3, over both intervals.
      expect(orders(tried[1])).toBe(8);
      expect(tried[1]).toMatchObject({ startUnixMs: 100_000, endUnixMs: 120_000 });
      serve(requests, 2);
      await vi.advanceTimersByTimeAsync(10_000);
      await waitFor('the third report', () => tried.length === 3);
      expect(orders(tried[2])).toBe(2);
      expect(tried[2]).toMatchObject({ startUnixMs: 120_000, endUnixMs: 130_000 });
    } finally {
      reporter.stop();
    }
  });
});
