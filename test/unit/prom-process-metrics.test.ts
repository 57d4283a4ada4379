// The agent's process metrics (src/telemetry/prom.ts) are prom-client's default ones, taken from
// its own files so that no agent process loads its package entry (issue #15): the same series
// with the same types, less the event-loop lag that event-loop-lag.ts measures instead, and the
// CPU counters counted here (prom-client's load the OpenTelemetry API).
import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { EVENT_LOOP_LAG_METRICS } from '../../src/agent/event-loop-lag.js';
import { Counter, collectProcessMetrics, Registry } from '../../src/telemetry/prom.js';

const series = async (registry: PromRegistry) =>
  (await registry.getMetricsAsJSON()).map((m) => `${m.name} ${m.type}`);

describe('process metrics without prom-client’s entry', () => {
  it('are prom-client’s defaults less its event-loop lag, in its order', async () => {
    const theirs = new PromRegistry();
    collectDefaultMetrics({ register: theirs });
    const ours = new Registry();
    collectProcessMetrics(ours);
    const lag = new Set(EVENT_LOOP_LAG_METRICS);
    expect(await series(ours)).toEqual(
      (await series(theirs)).filter((s) => !lag.has(s.split(' ')[0]!)),
    );
  });

  it('counts the CPU the process used, user and system adding up to the total', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'x_');
    let sum = 0;
    for (let i = 0; i < 2_000_000; i++) sum += Math.sqrt(i); // some CPU to count
    expect(sum).toBeGreaterThan(0);
    const values = Object.fromEntries(
      (await registry.getMetricsAsJSON())
        .filter((m) => m.name.startsWith('x_process_cpu'))
        .map((m) => [m.name, m.values[0]?.value ?? 0]),
    );
    expect(values.x_process_cpu_seconds_total).toBeGreaterThan(0);
    expect(values.x_process_cpu_seconds_total).toBeCloseTo(
      values.x_process_cpu_user_seconds_total! + values.x_process_cpu_system_seconds_total!,
      9,
    );
  });

  it('makes the same classes as the package entry (one prom-client, not two)', async () => {
    const prom = await import('prom-client');
    expect(Counter).toBe(prom.Counter);
    expect(Registry).toBe(prom.Registry);
  });
});
