// TrafficPolicy: how clients reach one Service: balancing, timeouts, retries, circuit breaking,
// outlier detection, rate limiting and active health checks. Defaults follow what operators of
// Linkerd and Envoy expect (see shared/REFERENCE.md); enforcement comes with the data path
// (healthCheck: enforced by each workload's agent).
import { z } from 'zod';
import { durationString, parseDuration } from '../duration.js';
import { dnsLabel, documentSchema, resourceName, serviceRef } from './common.js';

const count = (min: number, max: number) =>
  z
    .number()
    .int(`must be a whole number ${min}-${max}`)
    .min(min, `must be ${min}-${max}`)
    .max(max, `must be ${min}-${max}`);

/** A token (RFC 9110 5.6.2): what header and cookie names are made of. */
function httpToken(what: string) {
  return z
    .string()
    .regex(
      /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/,
      `must be ${what} (letters, digits and !#$%&'*+-.^_\`|~)`,
    );
}

export const balancer = z
  .object({
    /** p2cEwma: power of two choices over peak-EWMA latency (Linkerd's default). */
    type: z.enum(['roundRobin', 'leastConnections', 'p2cEwma', 'ringHash']).default('p2cEwma'),
    /**
     * ringHash only: what requests are hashed on, the first of these the request has (default:
     * the client's IP); a request with none of them goes to a random endpoint.
     */
    hashOn: z
      .object({
        header: httpToken('an HTTP header name').optional(),
        cookie: httpToken('a cookie name').optional(),
        sourceIp: z.boolean().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.hashOn !== undefined && b.type !== 'ringHash') {
      ctx.addIssue({ code: 'custom', path: ['hashOn'], message: 'only applies to type ringHash' });
    }
    const on = b.hashOn;
    if (on && on.header === undefined && on.cookie === undefined && on.sourceIp === false) {
      ctx.addIssue({
        code: 'custom',
        path: ['hashOn'],
        message:
          'names nothing to hash on: set header, cookie or sourceIp: true (or leave hashOn out to hash on the source IP)',
      });
    }
  });

/** Enforced by the outbound path (src/proxy/http/outbound-exchange.ts, outbound/opaque.ts). */
export const timeouts = z
  .object({
    /** Reaching an endpoint: a tunnel session and stream, or a local connection (opaque). */
    connect: durationString.optional(),
    /** The whole request, retries included, until its response is complete (504). */
    request: durationString.optional(),
    /** No byte either way for this long: a request's stream, or an opaque connection. */
    idle: durationString.optional(),
  })
  .strict();

export const retryOn = z.enum([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-status-codes',
]);

/**
 * Retries of outbound HTTP requests (src/proxy/resilience/): only of requests that can be sent
 * again unchanged (no body, or a body of at most 64 KiB, kept while it streams), never once
 * the client has the response's head; backoff with full jitter; within the budget.
 */
export const retries = z
  .object({
    /** Retries after the first try (Envoy's num_retries, Gateway API's attempts). */
    attempts: count(0, 10).default(1),
    /** Each try, until its response head; cut to what is left of timeouts.request. */
    perTryTimeout: durationString.optional(),
    on: z.array(retryOn).default(['connect-failure', 'refused-stream', 'reset', 'gateway-error']),
    /** HTTP statuses retried; needs `retriable-status-codes` in `on`. */
    retriableStatusCodes: z
      .array(count(100, 599))
      .min(1, 'must list at least one status')
      .optional(),
    /** gRPC statuses (e.g. 14 UNAVAILABLE) of a trailers-only response that are retried. */
    retriableGrpcStatusCodes: z
      .array(count(0, 16))
      .min(1, 'must list at least one gRPC status')
      .optional(),
    backoff: z
      .object({ base: durationString.default('25ms'), max: durationString.default('250ms') })
      .strict()
      .prefault({}),
    /** Retries may add `percent` % of requests plus `minPerSecond` (Linkerd's budget). */
    budget: z
      .object({ percent: count(0, 100).default(20), minPerSecond: count(0, 1_000_000).default(10) })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    const listed = r.on.includes('retriable-status-codes');
    if (listed && r.retriableStatusCodes === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['retriableStatusCodes'],
        message: 'is required when `on` lists retriable-status-codes: list the statuses to retry',
      });
    }
    if (!listed && r.retriableStatusCodes !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['retriableStatusCodes'],
        message:
          'does nothing unless `on` lists retriable-status-codes: add it there, or remove this field',
      });
    }
    const base = parseDuration(r.backoff.base);
    const max = parseDuration(r.backoff.max);
    if (base !== undefined && max !== undefined && max < base) {
      ctx.addIssue({
        code: 'custom',
        path: ['backoff', 'max'],
        message: `must be at least backoff.base (${r.backoff.base})`,
      });
    }
  });

export const circuitBreaker = z
  .object({
    maxConnections: count(1, 1_000_000).default(1024),
    maxPendingRequests: count(1, 1_000_000).default(1024),
    maxRequests: count(1, 1_000_000).default(1024),
    maxRetries: count(0, 1_000_000).default(3),
  })
  .strict();

export const outlierDetection = z
  .object({
    consecutiveFailures: count(1, 1_000).default(5),
    interval: durationString.default('10s'),
    baseEjectionTime: durationString.default('30s'),
    maxEjectionPercent: count(0, 100).default(10),
  })
  .strict();

/** A local token bucket (Envoy's shape): 429 when it is empty. */
export const rateLimit = z
  .object({
    maxTokens: count(1, 1_000_000_000),
    tokensPerFill: count(1, 1_000_000_000).default(1),
    fillInterval: durationString,
  })
  .strict();

/**
 * An active check of every workload of the service, run by each workload's own agent (see
 * src/controlplane-client/health-check.ts). Without one, agents check quietly that the
 * application listens (the kernel's socket table), which never touches it; this opts into a
 * TCP connect, or an HTTP GET with `http`. Every field is enforced.
 */
export const healthCheck = z
  .object({
    interval: durationString.default('5s'),
    /** Shorter than interval: checks of one workload never overlap. */
    timeout: durationString.default('1s'),
    /** Consecutive failures that make a healthy workload unhealthy. */
    unhealthyThreshold: count(1, 100).default(3),
    /** Consecutive passes that make an unhealthy workload healthy again. */
    healthyThreshold: count(1, 100).default(1),
    /** Without http, a TCP connect is the check. */
    http: z
      .object({
        path: z.string().startsWith('/', 'must start with "/"'),
        /** Default: any 2xx or 3xx. */
        expectedStatuses: z
          .array(count(100, 599))
          .min(1, 'must list at least one status')
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((h, ctx) => {
    const interval = parseDuration(h.interval);
    const timeout = parseDuration(h.timeout);
    if (interval !== undefined && timeout !== undefined && timeout >= interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeout'],
        message: `must be shorter than interval (${h.interval}): a check must end before the next one starts`,
      });
    }
  });

/** A duration that must be more than zero and at most `max`. */
function positiveDuration(ctx: z.RefinementCtx, path: string[], text: string, max: string): void {
  const ms = parseDuration(text);
  if (ms === undefined) return; // durationString already said what is wrong
  if (ms <= 0 || ms > parseDuration(max)!) {
    ctx.addIssue({ code: 'custom', path, message: `must be more than 0 and at most ${max}` });
  }
}

/**
 * Adaptive concurrency of the service, on each receiving agent (opt-in): Envoy's gradient
 * controller (src/proxy/resilience/adaptive-limit.ts). The limit on requests in flight to the
 * local app follows its latency against the unloaded latency (minRTT, measured now and then at
 * minConcurrency); a request over the limit gets 503 with `weft-reason: overloaded` (gRPC
 * UNAVAILABLE) at once, and callers' agents never retry it.
 */
export const adaptiveConcurrency = z
  .object({
    minConcurrency: count(1, 10_000).default(3),
    maxConcurrency: count(1, 1_000_000).default(1000),
    /** How often the limit moves. */
    sampleWindow: durationString.default('100ms'),
    /** The percentile of each window's latencies (and of minRTT's requests) that counts. */
    samplePercentile: count(1, 100).default(50),
    minRtt: z
      .object({
        /** How often the unloaded latency is measured again. */
        interval: durationString.default('60s'),
        /** Requests admitted at minConcurrency that make one measurement. */
        requests: count(1, 10_000).default(50),
        /** Each measurement starts up to this % of interval late (agents do not align). */
        jitterPercent: count(0, 100).default(10),
        /** Latency up to this % over minRTT does not shrink the limit. */
        bufferPercent: count(0, 100).default(25),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.maxConcurrency < a.minConcurrency) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxConcurrency'],
        message: `must be at least minConcurrency (${a.minConcurrency})`,
      });
    }
    positiveDuration(ctx, ['sampleWindow'], a.sampleWindow, '1m');
    positiveDuration(ctx, ['minRtt', 'interval'], a.minRtt.interval, '24h');
  });

/**
 * QoS classes of the callers of the service (by source service, as its mTLS identity proves
 * it; every other caller is standard), applied to adaptiveConcurrency's limit: lower classes
 * are shed first (src/proxy/resilience/adaptive-admission.ts).
 */
export const qos = z
  .object({
    classes: z
      .object({
        critical: z.array(dnsLabel).optional(),
        sheddable: z.array(dnsLabel).optional(),
      })
      .strict(),
    /**
     * Standard and sheddable requests are admitted only while fewer than these % of the limit
     * are in flight; critical ones while fewer critical ones than the limit are.
     */
    limitPercent: z
      .object({ standard: count(1, 100).default(80), sheddable: count(1, 100).default(50) })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((q, ctx) => {
    const critical = new Set(q.classes.critical ?? []);
    for (const [i, name] of (q.classes.sheddable ?? []).entries()) {
      if (critical.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['classes', 'sheddable', i],
          message: `${name} is also listed as critical: a service has one class`,
        });
      }
    }
    if (q.limitPercent.sheddable > q.limitPercent.standard) {
      ctx.addIssue({
        code: 'custom',
        path: ['limitPercent', 'sheddable'],
        message: `must be at most limitPercent.standard (${q.limitPercent.standard}): sheddable requests are shed first`,
      });
    }
  });

export const trafficPolicySpec = z
  .object({
    targetRef: serviceRef,
    balancer: balancer.optional(),
    timeouts: timeouts.optional(),
    retries: retries.optional(),
    circuitBreaker: circuitBreaker.optional(),
    outlierDetection: outlierDetection.optional(),
    rateLimit: rateLimit.optional(),
    healthCheck: healthCheck.optional(),
    adaptiveConcurrency: adaptiveConcurrency.optional(),
    qos: qos.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.qos !== undefined && p.adaptiveConcurrency === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['qos'],
        message:
          "classes act only on adaptiveConcurrency's limit: set adaptiveConcurrency too, or remove qos",
      });
    }
  });

export const trafficPolicyDocument = documentSchema(
  'TrafficPolicy',
  resourceName,
  trafficPolicySpec,
  z.object({}).loose(),
);

export type TrafficPolicySpec = z.infer<typeof trafficPolicySpec>;
export type TrafficPolicy = z.infer<typeof trafficPolicyDocument>;
