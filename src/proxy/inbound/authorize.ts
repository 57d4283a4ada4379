// Stage "authorize" of the inbound path: may this peer (its SPIFFE ID, or none for plaintext
// from outside the mesh) open a connection to this port (L4), or make this request (L7)?
//
// AuthorizationPolicy semantics (Istio's): DENY policies first: any matching rule refuses.
// Then, when the service has ALLOW policies, some rule of one must match; with none, allow.
// At L4 a rule's HTTP fields (methods, paths, grpc) cannot be checked. They fail closed: an
// ALLOW rule that needs them does not match, and a DENY rule that has them matches on the rest.
// From the files, not resources/index.js: a worker loads no schema it does not use.

import { httpFieldsOf } from '../../api/resources/authorization-fields.js';
import {
  pathFormProblem,
  pathMatches,
  pathWithoutQuery,
} from '../../api/resources/authorization-path.js';
import type {
  AuthorizationOperation,
  AuthorizationPolicySpec,
} from '../../api/resources/authorization-policy.js';

export type AuthzDecision =
  | { allow: true; policy?: string }
  | { allow: false; reason: string; policy?: string };

export interface NamedPolicy {
  name: string;
  spec: AuthorizationPolicySpec;
}

export interface L4Request {
  /** The peer's SPIFFE ID; undefined for plaintext from outside the mesh. */
  principal: string | undefined;
  /** The port the workload listens on (what rules' `ports` name). */
  port: number;
}

export interface HttpAuthzRequest extends L4Request {
  /** `:method` as received. */
  method: string;
  /** `:path` as received (origin-form, query included). A gRPC call's is /<service>/<method>. */
  path: string;
}

type Rule = AuthorizationPolicySpec['rules'][number];
type OperationMatcher = (op: AuthorizationOperation, action: 'ALLOW' | 'DENY') => boolean;

export function authorizeL4(policies: readonly NamedPolicy[], request: L4Request): AuthzDecision {
  return evaluate(policies, request, (op, action) => {
    if (op.ports?.length && !op.ports.includes(request.port)) return false;
    return action === 'DENY' || httpFieldsOf(op).length === 0;
  });
}

/**
 * One HTTP request (HTTP/1.1, HTTP/2 or gRPC). Rules match on the path as received, without
 * its query, never on a rewritten one: when a policy of the service matches on paths or gRPC
 * calls, a path not in normal form (dot segments, "//", encoded "/" or letters, ...: see
 * pathFormProblem) is refused, since the app might read it as another path. Likewise a
 * method that is not upper case is refused when a policy matches on methods: HTTP methods are
 * case-sensitive, yet some frameworks lower-case them before routing.
 */
export function authorizeRequest(
  policies: readonly NamedPolicy[],
  request: HttpAuthzRequest,
): AuthzDecision {
  if (policies.length === 0) return { allow: true };
  const uses = httpFieldsUsed(policies);
  const path = pathWithoutQuery(request.path);
  if (uses.methods && !/^[A-Z]+$/.test(request.method))
    return {
      allow: false,
      reason: `method "${request.method}" is refused: an AuthorizationPolicy of this service matches on methods, and they must be upper-case letters`,
    };
  if (uses.paths) {
    const problem = pathFormProblem(path);
    if (problem !== undefined)
      return {
        allow: false,
        reason: `path is refused: an AuthorizationPolicy of this service matches on paths, and this path is not in normal form (${problem}); send it normalized`,
      };
  }
  return evaluate(
    policies,
    request,
    (op) => operationMatches(op, request, path),
    `${request.method} ${path}`,
  );
}

function operationMatches(
  op: AuthorizationOperation,
  request: HttpAuthzRequest,
  path: string,
): boolean {
  if (op.ports?.length && !op.ports.includes(request.port)) return false;
  if (op.methods?.length && !(op.methods as readonly string[]).includes(request.method))
    return false;
  if (op.paths?.length && !op.paths.some((p) => pathMatches(p, path))) return false;
  if (op.grpc?.length) {
    const call = grpcCallOf(path);
    if (call === undefined) return false;
    return op.grpc.some(
      (g) => g.service === call.service && (g.method ?? call.method) === call.method,
    );
  }
  return true;
}

/**
 * The gRPC call a path names: "/pkg.Orders/Get" -> pkg.Orders, Get (the gRPC over HTTP/2
 * spec's Path "/" Service-Name "/" {method name}). Matched on the path alone, whatever the
 * content-type: gRPC-Web and Connect clients call the same method at the same path.
 */
export function grpcCallOf(path: string): { service: string; method: string } | undefined {
  const parts = path.split('/');
  if (parts.length !== 3 || parts[0] !== '' || parts[1] === '' || parts[2] === '') return undefined;
  return { service: parts[1]!, method: parts[2]! };
}

function evaluate(
  policies: readonly NamedPolicy[],
  request: L4Request,
  opMatches: OperationMatcher,
  what?: string,
): AuthzDecision {
  for (const p of policies) {
    if (
      p.spec.action === 'DENY' &&
      p.spec.rules.some((r) => ruleMatches(r, request, 'DENY', opMatches))
    ) {
      return { allow: false, reason: `denied by AuthorizationPolicy ${p.name}`, policy: p.name };
    }
  }
  const allows = policies.filter((p) => p.spec.action === 'ALLOW');
  if (allows.length === 0) return { allow: true };
  for (const p of allows) {
    if (p.spec.rules.some((r) => ruleMatches(r, request, 'ALLOW', opMatches)))
      return { allow: true, policy: p.name };
  }
  const who = request.principal ?? 'a plaintext peer';
  return {
    allow: false,
    reason: `no AuthorizationPolicy allows ${who}${what === undefined ? '' : ` to ${what}`}`,
  };
}

function ruleMatches(
  rule: Rule,
  req: L4Request,
  action: 'ALLOW' | 'DENY',
  opMatches: OperationMatcher,
): boolean {
  const fromOk = !rule.from?.length || rule.from.some((s) => sourceMatches(s, req.principal));
  const toOk = !rule.to?.length || rule.to.some((op) => opMatches(op, action));
  return fromOk && toOk;
}

function sourceMatches(
  source: NonNullable<Rule['from']>[number],
  principal: string | undefined,
): boolean {
  if (source.principals?.length && !source.principals.some((p) => principalMatches(p, principal)))
    return false;
  if (source.notPrincipals?.some((p) => principalMatches(p, principal))) return false;
  return true;
}

/** "*" matches any authenticated peer; "spiffe://td/svc/*" a prefix; otherwise exact. */
export function principalMatches(pattern: string, principal: string | undefined): boolean {
  if (principal === undefined) return false;
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return principal.startsWith(pattern.slice(0, -1));
  return pattern === principal;
}

/**
 * Which HTTP fields a service's policies use: found once per policy list (the mesh state keeps
 * one list per service and snapshot), not per request.
 */
const usedCache = new WeakMap<readonly NamedPolicy[], { methods: boolean; paths: boolean }>();

function httpFieldsUsed(policies: readonly NamedPolicy[]): { methods: boolean; paths: boolean } {
  let used = usedCache.get(policies);
  if (used === undefined) {
    const ops = policies.flatMap((p) => p.spec.rules.flatMap((r) => r.to ?? []));
    used = {
      methods: ops.some((op) => (op.methods?.length ?? 0) > 0),
      paths: ops.some((op) => (op.paths?.length ?? 0) > 0 || (op.grpc?.length ?? 0) > 0),
    };
    usedCache.set(policies, used);
  }
  return used;
}
