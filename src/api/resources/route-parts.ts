// The parts HTTPRoute and GRPCRoute share (Gateway API v1 shapes, the Service as parent):
// parent and backend references, hostnames, header matches, and the filters both kinds accept
// (header modifiers, request mirror, weft's fault injection), and weft's hedging of a rule.
import { z } from 'zod';
import { DURATION_HINT, durationString, parseDuration } from '../duration.js';
import { dnsLabel, port, regexText } from './common.js';

export const parentRef = z
  .object({
    kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
    name: dnsLabel,
    /** Only requests to this port of the Service (as clients call it); unset: every port. */
    port: port.optional(),
  })
  .strict();

export const backendRef = z
  .object({
    kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
    name: dnsLabel,
    /** The backend Service's port (as clients call it); defaults to the parent's port. */
    port: port.optional(),
    weight: z
      .number()
      .int()
      .min(0, 'must be 0-1000000')
      .max(1_000_000, 'must be 0-1000000')
      .default(1),
  })
  .strict();

/** A DNS name, or "*." and one: what a request's authority (without its port) is matched to. */
export const routeHostname = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(
    /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a lowercase DNS name, optionally starting with "*." (an IP address is not a hostname)',
  );

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name');

export const headerMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: headerName,
    value: z.string(),
  })
  .strict()
  .superRefine((h, ctx) => {
    if (h.type === 'RegularExpression' && !regexText.safeParse(h.value).success) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: 'is not a valid regular expression',
      });
    }
  });

/** Fields a route may not change: weft's own, and Host (URLRewrite's hostname changes it). */
function modifiable(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith('weft-')) return "weft-* fields are the mesh's own and cannot be set";
  if (lower === 'host') return "set the Host with a URLRewrite filter's hostname";
  return undefined;
}

const modifiedHeader = z
  .object({ name: headerName, value: z.string().regex(/^[^\r\n\0]*$/, 'must be one line') })
  .strict()
  .superRefine((h, ctx) => {
    const problem = modifiable(h.name);
    if (problem) ctx.addIssue({ code: 'custom', path: ['name'], message: problem });
  });

export const headerModifier = z
  .object({
    set: z.array(modifiedHeader).optional(),
    add: z.array(modifiedHeader).optional(),
    remove: z
      .array(
        headerName.superRefine((name, ctx) => {
          const problem = modifiable(name);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      )
      .optional(),
  })
  .strict();

/** A copy of each request to another Service; its answer is dropped. */
export const requestMirror = z
  .object({
    backendRef: z
      .object({
        kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
        name: dnsLabel,
        port: port.optional(),
      })
      .strict(),
  })
  .strict();

const percentage = z
  .number({ error: 'must be a number 0-100' })
  .min(0, 'must be 0-100')
  .max(100, 'must be 0-100');

/** weft's fault injection (for testing resilience): delay and/or abort a share of requests. */
export const faultFilter = z
  .object({
    delay: z
      .object({ fixedDelay: durationString, percentage: percentage.default(100) })
      .strict()
      .optional(),
    abort: z
      .object({
        httpStatus: z
          .number()
          .int('must be an HTTP status 200-599')
          .min(200, 'must be an HTTP status 200-599')
          .max(599, 'must be an HTTP status 200-599')
          .optional(),
        grpcStatus: z
          .number()
          .int('must be a gRPC status code 1-16')
          .min(1, 'must be a gRPC status code 1-16')
          .max(16, 'must be a gRPC status code 1-16')
          .optional(),
        percentage: percentage.default(100),
      })
      .strict()
      .superRefine((a, ctx) => {
        if ((a.httpStatus === undefined) === (a.grpcStatus === undefined))
          ctx.addIssue({
            code: 'custom',
            message: 'needs exactly one of httpStatus or grpcStatus',
          });
      })
      .optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.delay === undefined && f.abort === undefined)
      ctx.addIssue({ code: 'custom', message: 'needs delay, abort or both' });
  });

/** At most this many hedges per request: each one is a whole extra request upstream. */
export const MAX_HEDGES = 3;

/**
 * weft's hedging of a rule's requests: after `delay` (a duration, or "p95": the rule's observed
 * 95th percentile latency), one more attempt goes to another endpoint, the first good answer
 * wins and the other attempts are cancelled. Only idempotent requests are hedged (an HTTPRoute's
 * GET, HEAD, OPTIONS, PUT, DELETE; a GRPCRoute's rule declares its methods idempotent by
 * setting it), each hedge spends the retry budget.
 */
export const hedging = z
  .object({
    delay: z
      .string({ error: `must be "p95" or ${DURATION_HINT}` })
      .refine((d) => d === 'p95' || (parseDuration(d) ?? 0) > 0, {
        message: `must be "p95" or ${DURATION_HINT}, greater than zero`,
      }),
    maxHedges: z
      .number({ error: `must be a whole number 1-${MAX_HEDGES}` })
      .int(`must be a whole number 1-${MAX_HEDGES}`)
      .min(1, `must be a whole number 1-${MAX_HEDGES}`)
      .max(MAX_HEDGES, `must be a whole number 1-${MAX_HEDGES}`)
      .default(1),
  })
  .strict();

/** Per filter type, the field holding its configuration. */
export const FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  RequestMirror: 'requestMirror',
  Fault: 'fault',
} as const;

/** A filter's `type` names exactly one configuration field, which must be there. */
export function checkFilterFields(
  f: Record<string, unknown> & { type: keyof typeof FILTER_FIELDS },
  ctx: z.RefinementCtx,
): void {
  const field = FILTER_FIELDS[f.type];
  if (f[field] === undefined)
    ctx.addIssue({ code: 'custom', path: [field], message: `required with type ${f.type}` });
  for (const other of Object.values(FILTER_FIELDS)) {
    if (other !== field && f[other] !== undefined)
      ctx.addIssue({ code: 'custom', path: [other], message: `not allowed with type ${f.type}` });
  }
}

/** Each filter type at most once per rule, except RequestMirror (Gateway API). */
export function checkFilterRepeats(
  filters: ReadonlyArray<{ type: string }> | undefined,
  ctx: z.RefinementCtx,
  path: (string | number)[],
): void {
  const seen = new Set<string>();
  (filters ?? []).forEach((f, i) => {
    if (f.type !== 'RequestMirror' && seen.has(f.type))
      ctx.addIssue({
        code: 'custom',
        path: [...path, i, 'type'],
        message: `${f.type} appears twice in this rule; merge them into one`,
      });
    seen.add(f.type);
  });
}
