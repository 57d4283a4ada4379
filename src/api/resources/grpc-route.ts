// GRPCRoute in the Gateway API's shape: attached to a Service through parentRefs, rules match
// gRPC calls (content-type application/grpc*) on service, method and headers, split them over
// weighted backendRefs and apply the filters gRPC allows (header modifiers, mirror, fault).
import { z } from 'zod';
import { documentSchema, regexText, resourceName } from './common.js';
import {
  backendRef,
  checkFilterFields,
  checkFilterRepeats,
  faultFilter,
  headerMatch,
  headerModifier,
  hedging,
  parentRef,
  requestMirror,
  routeHostname,
} from './route-parts.js';

/** A gRPC service ("pkg.Service") or method ("Say") name as it appears in the :path. */
const grpcName = z.string().regex(/^[^/\s]+$/, 'must be a name without "/" or spaces');

const methodMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    service: z.string().optional(),
    method: z.string().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.service === undefined && m.method === undefined)
      ctx.addIssue({ code: 'custom', message: 'needs service, method or both' });
    for (const field of ['service', 'method'] as const) {
      const value = m[field];
      if (value === undefined) continue;
      const ok =
        m.type === 'Exact' ? grpcName.safeParse(value).success : regexText.safeParse(value).success;
      if (!ok)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message:
            m.type === 'Exact'
              ? 'must be a name without "/" or spaces'
              : 'is not a valid regular expression',
        });
    }
  });

export const grpcRouteMatch = z
  .object({ method: methodMatch.optional(), headers: z.array(headerMatch).optional() })
  .strict();

export const grpcRouteFilter = z
  .object({
    type: z.enum(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'Fault']),
    requestHeaderModifier: headerModifier.optional(),
    responseHeaderModifier: headerModifier.optional(),
    requestMirror: requestMirror.optional(),
    fault: faultFilter.optional(),
  })
  .strict()
  .superRefine(checkFilterFields);

export const grpcRouteRule = z
  .object({
    /** No matches: every gRPC call. */
    matches: z.array(grpcRouteMatch).default([{}]),
    filters: z.array(grpcRouteFilter).optional(),
    /** No backendRefs: the parent Service itself. */
    backendRefs: z.array(backendRef).optional(),
    /**
     * weft: hedge this rule's calls. gRPC calls are all POSTs: setting it declares the rule's
     * methods idempotent (as gRPC's own hedgingPolicy, set per method in a service config).
     */
    hedging: hedging.optional(),
  })
  .strict()
  .superRefine((rule, ctx) => checkFilterRepeats(rule.filters, ctx, ['filters']));

export const grpcRouteSpec = z
  .object({
    parentRefs: z
      .array(parentRef)
      .min(1, 'a GRPCRoute needs at least one parentRef (the Service it routes)'),
    /** Only calls whose authority (without its port) is one of these. */
    hostnames: z.array(routeHostname).optional(),
    rules: z.array(grpcRouteRule).min(1, 'a GRPCRoute needs at least one rule'),
  })
  .strict();

export const grpcRouteDocument = documentSchema(
  'GRPCRoute',
  resourceName,
  grpcRouteSpec,
  z.object({}).loose(),
);

export type GRPCRouteSpec = z.infer<typeof grpcRouteSpec>;
export type GRPCRouteRule = z.infer<typeof grpcRouteRule>;
export type GRPCRoute = z.infer<typeof grpcRouteDocument>;
