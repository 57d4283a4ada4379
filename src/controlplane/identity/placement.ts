// Workload placement: a node registers workloads of, and gets certificates for, only the
// services it may serve (NodeRecord.services: from its join token, then `weft node allow`).
// One registration naming a service the node may not serve does not take the node's other
// workloads off the mesh: the allowed ones are stored and the others refused, each with why.
// Pure; the executor is IdentityService.registerWorkloads.
import type { RefusedWorkload } from '../../api/messages.js';

/** What a node may register per call; more is refused as a whole (a hostile agent's flood). */
export const MAX_WORKLOADS_PER_NODE = 1_024;

export const SERVICE_NOT_ALLOWED = 'service_not_allowed';

/** Why `node` may not serve `service`, and how an operator allows it. */
export function notAllowedMessage(node: string, service: string): string {
  return `node ${node} may not serve service "${service}": allow it on the control plane with \`weft node allow ${node} --service ${service}\``;
}

export interface Placement<T> {
  accepted: T[];
  refused: RefusedWorkload[];
}

/** Splits registrations (named on the node) into those `allowed` and the refused ones. */
export function placeWorkloads<T extends { service: string }>(
  node: string,
  allowed: readonly string[],
  registrations: ReadonlyArray<{ name: string; item: T }>,
): Placement<T> {
  const may = new Set(allowed);
  const out: Placement<T> = { accepted: [], refused: [] };
  for (const { name, item } of registrations) {
    if (may.has(item.service)) out.accepted.push(item);
    else
      out.refused.push({
        name,
        service: item.service,
        reason: SERVICE_NOT_ALLOWED,
        message: notAllowedMessage(node, item.service),
      });
  }
  return out;
}

/** The services a node may serve after `allow` and `disallow`, sorted. */
export function changeServices(
  current: readonly string[],
  allow: readonly string[],
  disallow: readonly string[],
): string[] {
  const out = new Set(current);
  for (const s of allow) out.add(s);
  for (const s of disallow) out.delete(s);
  return [...out].sort();
}
