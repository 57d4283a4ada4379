// AuthorizationPolicy: who may call a Service. A request matches a rule when it matches one of
// its `from` entries (or there are none) and one of its `to` entries (or there are none).
// ALLOW policies admit only what some rule matches; DENY policies refuse what a rule matches.
import { z } from 'zod';
import { pathFormProblem } from './authorization-path.js';
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

/** A rule's path: exact, or a prefix ending in "*"; in the normal form requests must have. */
const rulePath = z
  .string()
  .startsWith('/', 'must start with "/"')
  .superRefine((p, ctx) => {
    const body = p.endsWith('*') ? p.slice(0, -1) : p;
    if (body.includes('*')) {
      ctx.addIssue({
        code: 'custom',
        message: 'may have "*" only at the end (a prefix: "/admin*", "/admin/*")',
      });
      return;
    }
    if (body.includes('?')) {
      ctx.addIssue({
        code: 'custom',
        message: 'must not have a query ("?"): paths are matched without the query',
      });
      return;
    }
    const problem = pathFormProblem(body);
    if (problem !== undefined)
      ctx.addIssue({
        code: 'custom',
        message: `is not in normal form (${problem}): requests with such paths are refused, so it would never match`,
      });
  });

/** A fully-qualified protobuf service name ("pkg.Orders"), as in the gRPC :path. */
export const GRPC_SERVICE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
export const GRPC_METHOD = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A gRPC service, and optionally one of its methods: the call /service/method. */
const grpcMatch = z
  .object({
    service: z.string().regex(GRPC_SERVICE, 'must be a protobuf service name such as pkg.Orders'),
    method: z.string().regex(GRPC_METHOD, 'must be a method name such as GetOrder').optional(),
  })
  .strict();

const operation = z
  .object({
    /** The ports the workloads listen on (a Service port's targetPort). */
    ports: z.array(port).optional(),
    methods: z.array(httpMethod).optional(),
    /** Exact paths, or prefixes ending in "*". */
    paths: z.array(rulePath).optional(),
    /** gRPC calls, matched on the request's :path "/<service>/<method>". */
    grpc: z.array(grpcMatch).optional(),
  })
  .strict()
  .superRefine((op, ctx) => {
    if (op.grpc?.length && (op.methods?.length || op.paths?.length))
      ctx.addIssue({
        code: 'custom',
        path: ['grpc'],
        message:
          'cannot be combined with methods or paths in one entry (a gRPC call is a POST to /<service>/<method>): put them in separate entries of to',
      });
  });

export { HTTP_OPERATION_FIELDS, httpFieldsOf } from './authorization-fields.js';

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
export type AuthorizationOperation = z.infer<typeof operation>;
export type AuthorizationGrpcMatch = z.infer<typeof grpcMatch>;
export type AuthorizationPolicy = z.infer<typeof authorizationPolicyDocument>;
