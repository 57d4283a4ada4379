// Whether a usable token lets `hostname` join, given the node of that name if one exists: the
// token must name this host, and an existing node is replaced only by a token that says so
// (a rebuilt host); anything else would let one token take over a live node's name. Pure: the
// join executor (identity-service.ts) does the I/O.
import type { NodeRecord } from './node-record.js';
import type { TokenRecord } from './tokens.js';

export type JoinDecision =
  /** A new node: it may serve the token's services. */
  | { outcome: 'join'; services: string[] }
  /** A rebuilt host takes over the node: its old certificates are revoked. */
  | { outcome: 'replace'; services: string[]; previous: NodeRecord }
  | { outcome: 'wrong_node'; tokenNode: string }
  | { outcome: 'node_exists'; existing: NodeRecord };

export function decideJoin(
  token: Pick<TokenRecord, 'node' | 'services' | 'replace'>,
  hostname: string,
  existing: NodeRecord | undefined,
): JoinDecision {
  if (token.node !== hostname) return { outcome: 'wrong_node', tokenNode: token.node ?? '' };
  const services = [...(token.services ?? [])];
  if (existing === undefined) return { outcome: 'join', services: services.sort() };
  if (token.replace !== true) return { outcome: 'node_exists', existing };
  // A replacement keeps what the operator allowed the node before: the token can only add.
  const union = [...new Set([...(existing.services ?? []), ...services])].sort();
  return { outcome: 'replace', services: union, previous: existing };
}
