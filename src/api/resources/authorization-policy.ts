// AuthorizationPolicy: who may call a Service. A request matches a rule when it matches one of
// its `from` entries (or there are none) and one of its `to` entries (or there are none).
// ALLOW policies admit only what some rule matches; DENY policies refuse what a rule matches.
import { z } from 'zod';
import { documentSchema, httpMethod, port, resourceName, serviceRef } from './common.js';

/** A SPIFFE ID, a prefix ending in "*" (spiffe://weft.local/svc/*), or "*". */
const principal = z.string().refine((p) => p === '*' || p.startsWith('spiffe://'), {
  message: 'must be a SPIFFE ID (spiffe://...), optionally ending in "*", or "*"',
});

const source = z
  .object({
    principals: z.array(principal).optional(),
    notPrincipals: z.array(principal).optional(),
  })
  .strict();

const operation = z
  .object({
    ports: z.array(port).optional(),
    methods: z.array(httpMethod).optional(),
    /** Exact paths, or prefixes ending in "*". */
    paths: z.array(z.string().startsWith('/', 'must start with "/"')).optional(),
  })
  .strict();

export const authorizationRule = z
  .object({
    from: z.array(source).optional(),
    to: z.array(operation).optional(),
  })
  .strict();

export const authorizationPolicySpec = z
  .object({
    targetRef: serviceRef,
    action: z.enum(['ALLOW', 'DENY']).default('ALLOW'),
    rules: z.array(authorizationRule).default([]),
  })
  .strict();

export const authorizationPolicyDocument = documentSchema(
  'AuthorizationPolicy',
  resourceName,
  authorizationPolicySpec,
  z.object({}).loose(),
);

export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpec>;
export type AuthorizationPolicy = z.infer<typeof authorizationPolicyDocument>;
