// Stage "authorize" of the inbound path at L4: may this peer (its SPIFFE ID, or none for
// plaintext from outside the mesh) open a connection to this port of this service?
//
// AuthorizationPolicy semantics (Istio's): DENY policies first: any matching rule refuses.
// Then, when the service has ALLOW policies, some rule of one must match; with none, allow.
// At L4 a rule's HTTP fields (methods, paths) cannot be checked. They fail closed: an ALLOW
// rule that needs them does not match, and a DENY rule that has them matches on the rest.
import type { AuthorizationPolicySpec } from '../../api/resources/index.js';

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
  port: number;
}

export function authorizeL4(policies: readonly NamedPolicy[], request: L4Request): AuthzDecision {
  for (const p of policies) {
    if (p.spec.action === 'DENY' && p.spec.rules.some((r) => ruleMatches(r, request, 'deny'))) {
      return { allow: false, reason: `denied by AuthorizationPolicy ${p.name}`, policy: p.name };
    }
  }
  const allows = policies.filter((p) => p.spec.action === 'ALLOW');
  if (allows.length === 0) return { allow: true };
  for (const p of allows) {
    if (p.spec.rules.some((r) => ruleMatches(r, request, 'allow')))
      return { allow: true, policy: p.name };
  }
  return {
    allow: false,
    reason: `no AuthorizationPolicy allows ${request.principal ?? 'a plaintext peer'}`,
  };
}

type Rule = AuthorizationPolicySpec['rules'][number];

function ruleMatches(rule: Rule, req: L4Request, action: 'allow' | 'deny'): boolean {
  const fromOk = !rule.from?.length || rule.from.some((s) => sourceMatches(s, req.principal));
  const toOk =
    !rule.to?.length ||
    rule.to.some((op) => {
      if (op.ports?.length && !op.ports.includes(req.port)) return false;
      const needsL7 = Boolean(op.methods?.length || op.paths?.length);
      return action === 'deny' || !needsL7;
    });
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
