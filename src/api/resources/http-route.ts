// HTTPRoute in the Gateway API's shape: attached to a Service through parentRefs, rules match on
// path, headers, query parameters and method, split traffic over weighted backendRefs and apply
// filters (header modifiers, URL rewrite, redirect, mirror, weft's fault injection).
import { z } from 'zod';
import { durationString, parseDuration } from '../duration.js';
import { documentSchema, httpMethod, port, regexText, resourceName } from './common.js';
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

const queryParamMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: z.string().min(1, 'must not be empty'),
    value: z.string(),
  })
  .strict()
  .superRefine((q, ctx) => {
    if (q.type === 'RegularExpression' && !regexText.safeParse(q.value).success) {
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
    queryParams: z.array(queryParamMatch).optional(),
    method: httpMethod.optional(),
  })
  .strict();

const absolutePath = z.string().startsWith('/', 'must start with "/"');

/** How a rewrite or redirect changes the path (Gateway API HTTPPathModifier). */
const pathModifier = z
  .object({
    type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
    replaceFullPath: absolutePath.optional(),
    replacePrefixMatch: absolutePath.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const field = p.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
    const other = p.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
    if (p[field] === undefined)
      ctx.addIssue({ code: 'custom', path: [field], message: `required with type ${p.type}` });
    if (p[other] !== undefined)
      ctx.addIssue({ code: 'custom', path: [other], message: `not allowed with type ${p.type}` });
  });

const urlRewrite = z
  .object({ hostname: routeHostname.optional(), path: pathModifier.optional() })
  .strict()
  .refine((u) => u.hostname !== undefined || u.path !== undefined, {
    message: 'needs hostname, path or both',
  });

const requestRedirect = z
  .object({
    scheme: z.enum(['http', 'https']).optional(),
    hostname: routeHostname.optional(),
    path: pathModifier.optional(),
    port: port.optional(),
    statusCode: z
      .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], {
        error: 'must be 301, 302, 303, 307 or 308',
      })
      .default(302),
  })
  .strict();

export const httpRouteFilter = z
  .object({
    type: z.enum([
      'RequestHeaderModifier',
      'ResponseHeaderModifier',
      'URLRewrite',
      'RequestRedirect',
      'RequestMirror',
      'Fault',
    ]),
    requestHeaderModifier: headerModifier.optional(),
    responseHeaderModifier: headerModifier.optional(),
    urlRewrite: urlRewrite.optional(),
    requestRedirect: requestRedirect.optional(),
    requestMirror: requestMirror.optional(),
    fault: faultFilter.optional(),
  })
  .strict()
  .superRefine(checkFilterFields);

export const httpRouteRule = z
  .object({
    /** No matches: every request (path prefix "/"). */
    matches: z.array(httpRouteMatch).default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: z.array(httpRouteFilter).optional(),
    /** No backendRefs: the parent Service itself. */
    backendRefs: z.array(backendRef).optional(),
    /**
     * Over the backend's TrafficPolicy: request bounds the whole request (retries included,
     * until its response is complete), backendRequest each try (until its response head).
     */
    timeouts: z
      .object({ request: durationString.optional(), backendRequest: durationString.optional() })
      .strict()
      .optional(),
    /** weft: hedge this rule's idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE). */
    hedging: hedging.optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    const filters = rule.filters ?? [];
    checkFilterRepeats(filters, ctx, ['filters']);
    const redirect = filters.findIndex((f) => f.type === 'RequestRedirect');
    const rewrite = filters.findIndex((f) => f.type === 'URLRewrite');
    if (redirect >= 0 && rewrite >= 0)
      ctx.addIssue({
        code: 'custom',
        path: ['filters', rewrite],
        message: 'a rule cannot both redirect and rewrite: keep one',
      });
    if (redirect >= 0 && rule.backendRefs !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['backendRefs'],
        message:
          'a RequestRedirect rule is answered by the mesh and sends nothing to a backend: remove backendRefs',
      });
    if (redirect >= 0 && rule.hedging !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['hedging'],
        message:
          'a RequestRedirect rule is answered by the mesh and sends nothing to a backend: remove hedging',
      });
    // ReplacePrefixMatch replaces the prefix the request matched: only a PathPrefix match has one.
    filters.forEach((f, i) => {
      const modifier = f.urlRewrite?.path ?? f.requestRedirect?.path;
      if (modifier?.type !== 'ReplacePrefixMatch') return;
      if (rule.matches.some((m) => (m.path?.type ?? 'PathPrefix') !== 'PathPrefix'))
        ctx.addIssue({
          code: 'custom',
          path: ['filters', i],
          message: 'ReplacePrefixMatch needs every match of the rule to be a PathPrefix path match',
        });
    });
    checkTimeouts(rule.timeouts, ctx);
  });

/** Gateway API: backendRequest (one try) must not be longer than request (the whole). */
function checkTimeouts(
  t: { request?: string; backendRequest?: string } | undefined,
  ctx: z.RefinementCtx,
): void {
  if (t?.request === undefined || t.backendRequest === undefined) return;
  const whole = parseDuration(t.request);
  const one = parseDuration(t.backendRequest);
  if (whole !== undefined && one !== undefined && one > whole)
    ctx.addIssue({
      code: 'custom',
      path: ['timeouts', 'backendRequest'],
      message: 'must not be longer than timeouts.request',
    });
}

export const httpRouteSpec = z
  .object({
    parentRefs: z
      .array(parentRef)
      .min(1, 'an HTTPRoute needs at least one parentRef (the Service it routes)'),
    /** Only requests whose authority (without its port) is one of these. */
    hostnames: z.array(routeHostname).optional(),
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
export type HTTPRouteRule = z.infer<typeof httpRouteRule>;
export type HTTPRouteFilter = z.infer<typeof httpRouteFilter>;
export type HTTPRoute = z.infer<typeof httpRouteDocument>;
