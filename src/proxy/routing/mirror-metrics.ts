// RequestMirror's counts in /metrics: weft_http_mirrored_total{dst_service, mirror_service,
// outcome}, per copy: `sent`, then `failed` when no app answered it (the agent's own answer:
// no endpoint, a timeout, the 10 s cut; or an error), or `dropped` instead of sent when the
// request's body was over 64 KiB. dst_service is the Service the request itself went to.
import type { Registry } from 'prom-client';
import { Counter } from '../../telemetry/prom.js';

export type MirrorOutcome = 'sent' | 'failed' | 'dropped';

export class MirrorMetrics {
  private readonly counter: Counter<'dst_service' | 'mirror_service' | 'outcome'>;

  constructor(registry: Registry) {
    this.counter = new Counter({
      name: 'weft_http_mirrored_total',
      help: 'Copies of outbound HTTP requests sent by a route rule RequestMirror: sent, failed (no app answered), dropped (body over 64 KiB)',
      labelNames: ['dst_service', 'mirror_service', 'outcome'],
      registers: [registry],
    });
  }

  count(dst: string, mirror: string, outcome: MirrorOutcome): void {
    this.counter.inc({ dst_service: dst, mirror_service: mirror, outcome });
  }
}
