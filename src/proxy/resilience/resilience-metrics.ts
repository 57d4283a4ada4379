// The resilience stages' counters, read from MeshState's breakers and buckets at scrape time
// (off the data path, which only increments plain numbers):
// weft_circuit_breaker_rejections_total{dst_service,limit} and weft_rate_limited_total{dst_service}.
import type { Registry } from 'prom-client';
import { Counter } from '../../telemetry/prom.js';
import type { MeshState } from '../mesh-state.js';
import type { BreakerLimit } from './breaker.js';

export function registerResilienceMetrics(registry: Registry, state: MeshState): void {
  const registers = [registry];
  new Counter({
    name: 'weft_circuit_breaker_rejections_total',
    help: 'Connections and requests this agent refused at once because a circuit breaker limit of their destination service was reached',
    labelNames: ['dst_service', 'limit'],
    registers,
    collect() {
      this.reset();
      for (const b of state.allBreakers()) {
        for (const [limit, n] of Object.entries(b.rejections) as [BreakerLimit, number][]) {
          if (n > 0) this.inc({ dst_service: b.service, limit }, n);
        }
      }
    },
  });
  new Counter({
    name: 'weft_rate_limited_total',
    help: "Requests and connections to a local service refused by its TrafficPolicy's rate limit (429)",
    labelNames: ['dst_service'],
    registers,
    collect() {
      this.reset();
      for (const [service, n] of state.rateLimited()) {
        if (n > 0) this.inc({ dst_service: service }, n);
      }
    },
  });
}
