// HTTPRoute in the Gateway API's shape: attached to a Service through parentRefs, rules match on
// path, headers and method and split traffic over weighted backendRefs.
import { z } from 'zod';
import { durationString } from '../duration.js';
import { dnsLabel, documentSchema, httpMethod, port, regexText, resourceName } from './common.js';

const pathMatch = z
  .object({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
    value: z.string().default('/'),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.type !== 'RegularExpression' && !p.value.startsWith('/')) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: 'must start with "/"' });
    }
    if (p.type === 'RegularExpression' && !regexText.safeParse(p.value).success) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: 'is not a valid regular expression',
      });
    }
  });

const headerMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name'),
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

export const httpRouteMatch = z
  .object({
    path: pathMatch.optional(),
    headers: z.array(headerMatch).optional(),
    method: httpMethod.optional(),
  })
  .strict();

const header = z.object({ name: z.string().min(1), value: z.string() }).strict();
const headerModifier = z
  .object({
    set: z.array(header).optional(),
    add: z.array(header).optional(),
    remove: z.array(z.string()).optional(),
  })
  .strict();

export const httpRouteFilter = z
  .object({
    type: z.enum(['RequestHeaderModifier', 'ResponseHeaderModifier']),
    requestHeaderModifier: headerModifier.optional(),
    responseHeaderModifier: headerModifier.optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    const field =
      f.type === 'RequestHeaderModifier' ? 'requestHeaderModifier' : 'responseHeaderModifier';
    const other =
      f.type === 'RequestHeaderModifier' ? 'responseHeaderModifier' : 'requestHeaderModifier';
    if (f[field] === undefined)
      ctx.addIssue({ code: 'custom', path: [field], message: `required with type ${f.type}` });
    if (f[other] !== undefined)
      ctx.addIssue({ code: 'custom', path: [other], message: `not allowed with type ${f.type}` });
  });

export const backendRef = z
  .object({
    kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
    name: dnsLabel,
    port: port.optional(),
    weight: z
      .number()
      .int()
      .min(0, 'must be 0-1000000')
      .max(1_000_000, 'must be 0-1000000')
      .default(1),
  })
  .strict();

export const httpRouteRule = z
  .object({
    /** No matches: every request (path prefix "/"). */
    matches: z.array(httpRouteMatch).default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: z.array(httpRouteFilter).optional(),
    /** No backendRefs: the parent Service itself. */
    backendRefs: z.array(backendRef).optional(),
    timeouts: z
      .object({ request: durationString.optional(), backendRequest: durationString.optional() })
      .strict()
      .optional(),
  })
  .strict();

export const parentRef = z
  .object({
    kind: z.literal('Service', { error: 'must be Service' }).default('Service'),
    name: dnsLabel,
    port: port.optional(),
  })
  .strict();

export const httpRouteSpec = z
  .object({
    parentRefs: z
      .array(parentRef)
      .min(1, 'an HTTPRoute needs at least one parentRef (the Service it routes)'),
    hostnames: z.array(z.string().min(1)).optional(),
    rules: z.array(httpRouteRule).min(1, 'an HTTPRoute needs at least one rule'),
  })
  .strict();

export const httpRouteDocument = documentSchema(
  'HTTPRoute',
  resourceName,
  httpRouteSpec,
  z.object({}).loose(),
);

export type HTTPRouteSpec = z.infer<typeof httpRouteSpec>;
export type HTTPRoute = z.infer<typeof httpRouteDocument>;
