// TrafficPolicy: how clients reach one Service: balancing, timeouts, retries, circuit breaking,
// outlier detection, rate limiting and active health checks. Defaults follow what operators of
// Linkerd and Envoy expect (see shared/REFERENCE.md). Enforced: balancer, timeouts, retries,
// circuitBreaker (maxConnections, maxPendingRequests, maxRequests, maxRetries),
// outlierDetection, rateLimit, adaptiveConcurrency and qos (the data path) and healthCheck (each
// workload's agent).
import { z } from 'zod';
import { durationString, parseDuration } from '../duration.js';
import { dnsLabel, documentSchema, resourceName } from './common.js';
import { CIRCUIT_BREAKER_DEFAULTS, OUTLIER_DETECTION_DEFAULTS } from './traffic-policy-defaults.js';

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

/**
 * Per destination service, on each caller's agent (src/proxy/resilience/breaker.ts): app
 * connections open to it (opaque, or HTTP once carrying a request), HTTP requests in flight, and
 * requests waiting for a tunnel session; beyond a limit, a 503 circuit_open (gRPC UNAVAILABLE)
 * or a reset connection. maxRetries bounds concurrent retries.
 */
export const circuitBreaker = z
  .object({
    maxConnections: count(1, 1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxConnections),
    maxPendingRequests: count(1, 1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxPendingRequests),
    maxRequests: count(1, 1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxRequests),
    // Unset: no limit but the retry budget (Linkerd's model). Envoy's default of 3 retries at
    // once fails the requests in flight when an endpoint dies under load.
    maxRetries: count(0, 1_000_000).optional(),
  })
  .strict();

/**
 * Passive outlier detection by each caller's agent (Envoy's consecutive failures, with one
 * probe while half-open): connect failures, resets and 5xx answers in a row eject an endpoint
 * for n x baseEjectionTime (n: its ejections, less one per interval back in service; at most
 * 300 s or the base), never more than maxEjectionPercent of the endpoints at once (Envoy: one
 * may go while fewer are out) and never the last usable one. See src/proxy/balance/outlier.ts.
 */
export const outlierDetection = z
  .object({
    consecutiveFailures: count(1, 1_000).default(OUTLIER_DETECTION_DEFAULTS.consecutiveFailures),
    interval: durationString.default(OUTLIER_DETECTION_DEFAULTS.interval),
    // 5 s, not Envoy's 30 s: weft's quiet health check already takes a stopped app out, so
    // ejection is for endpoints that fail while they listen; an app restarted after failing
    // requests is back within seconds (a probe), not half a minute.
    baseEjectionTime: durationString.default(OUTLIER_DETECTION_DEFAULTS.baseEjectionTime),
    maxEjectionPercent: count(0, 100).default(OUTLIER_DETECTION_DEFAULTS.maxEjectionPercent),
  })
  .strict();

/**
 * A local token bucket (Envoy's shape), per destination service on the receiving agent: it
 * starts full (maxTokens) and gets tokensPerFill every fillInterval; each request (or opaque
 * connection) takes one; empty: 429 with retry-after (gRPC RESOURCE_EXHAUSTED; a connection is
 * refused).
 */
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

/** What a policy applies to: one Service, or the whole Mesh (defaults for every service). */
export type PolicyTarget = { kind: 'Service'; name: string } | { kind: 'Mesh'; name?: string };

/**
 * `{name: orders}` (kind Service by default) or `{kind: Mesh}`; a Mesh target's name, when
 * given, must be the Mesh resource's (checked at apply: there is one Mesh).
 */
export const policyTargetRef = z
  .object({
    kind: z.enum(['Service', 'Mesh'], { error: 'must be Service or Mesh' }).default('Service'),
    name: z.string().optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const rule = t.kind === 'Service' ? dnsLabel : resourceName;
    if (t.name === undefined) {
      if (t.kind === 'Service')
        ctx.addIssue({
          code: 'custom',
          path: ['name'],
          message: 'required: the Service it applies to',
        });
      return;
    }
    const named = rule.safeParse(t.name);
    if (!named.success)
      ctx.addIssue({ code: 'custom', path: ['name'], message: named.error.issues[0]!.message });
  })
  .transform((t) => t as PolicyTarget);

const trafficPolicyFields = z
  .object({
    targetRef: policyTargetRef,
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
  .strict();

/** Checks of one field against another that a Service's policy may inherit from the Mesh's. */
function qosNeedsLimit(p: z.infer<typeof trafficPolicyFields>, ctx: z.RefinementCtx): void {
  if (p.qos !== undefined && p.adaptiveConcurrency === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['qos'],
      message:
        "classes act only on adaptiveConcurrency's limit: set adaptiveConcurrency too (here or in the Mesh's policy), or remove qos",
    });
  }
}

/** The policy as it applies: one document, or a Service's merged over the Mesh's (./traffic-policy-scopes.ts). */
export const trafficPolicySpec = trafficPolicyFields.superRefine(qosNeedsLimit);

/** The paths of the object members that are null (not inside lists: there null is a value). */
export function nullPaths(value: unknown, at: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    v === null ? [[...at, k]] : nullPaths(v, [...at, k]),
  );
}

/** The value with its null members dropped (RFC 7386: a merge patch applied to nothing). */
export function withoutNulls(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}

/**
 * A policy as written. In a Service's policy `null` removes a value the Mesh's policy sets
 * (an inherited hashOn, perTryTimeout or healthCheck.http); a Mesh policy inherits nothing,
 * so null there would do nothing and is refused. Each document must hold on its own too,
 * except that a Service's qos may rely on the Mesh's adaptiveConcurrency: that is checked on
 * the merged policy (apply's traffic-policy-check.ts, even with no Mesh policy).
 */
const trafficPolicyDocumentSpec = z
  .unknown()
  .transform((spec, ctx) => {
    const target = (spec as { targetRef?: { kind?: unknown } } | null)?.targetRef;
    if (target?.kind === 'Mesh') {
      for (const path of nullPaths(spec))
        ctx.addIssue({
          code: 'custom',
          path,
          message:
            'null removes a value a Service policy inherits from the Mesh policy; a Mesh policy inherits nothing: remove it',
        });
    }
    return withoutNulls(spec);
  })
  .pipe(
    trafficPolicyFields.superRefine((p, ctx) => {
      if (p.targetRef.kind === 'Mesh') qosNeedsLimit(p, ctx);
    }),
  );

export const trafficPolicyDocument = documentSchema(
  'TrafficPolicy',
  resourceName,
  trafficPolicyDocumentSpec,
  z.object({}).loose(),
);

export type TrafficPolicySpec = z.infer<typeof trafficPolicySpec>;
export type TrafficPolicy = z.infer<typeof trafficPolicyDocument>;
