// Where each kind of state lives in the store. One prefix per kind of thing, so watches and
// lists select exactly what they need (the sync stream watches /resources/ only).
import type { ResourceKind } from '../../api/resources/kinds.js';

export const RESOURCES_PREFIX = '/resources/';
export const TOKENS_PREFIX = '/tokens/';
export const NODES_PREFIX = '/nodes/';
export const VIPS_PREFIX = '/vips/';
export const CA_KEY = '/ca';
/** Each node's recent stats reports, shared by replicas on etcd (src/controlplane/stats). */
export const STATS_PREFIX = '/stats/';
/** The CA key sealed under the replicas' KEK (etcd only: ca/sealed-ca-key.ts). */
export const CA_SEALED_KEY = '/ca-key';
/** The replicas sharing an etcd store, each under its lease (replicas/replica-directory.ts). */
export const REPLICAS_PREFIX = '/replicas/';
/** Written first and last by `weft controlplane migrate` (migrate/migration-marker.ts). */
export const MIGRATION_KEY = '/migration';

export const resourceKey = (kind: ResourceKind, name: string): string =>
  `${RESOURCES_PREFIX}${kind}/${name}`;
export const kindPrefix = (kind: ResourceKind): string => `${RESOURCES_PREFIX}${kind}/`;
export const tokenKey = (id: string): string => `${TOKENS_PREFIX}${id}`;
export const nodeKey = (name: string): string => `${NODES_PREFIX}${name}`;
export const statsKey = (node: string): string => `${STATS_PREFIX}${node}`;
export const replicaKey = (id: string): string => `${REPLICAS_PREFIX}${id}`;
export const vipKey = (ip: string): string => `${VIPS_PREFIX}${ip}`;

/** "Service/echo" from "/resources/Service/echo". */
export function resourceIdOfKey(key: string): { kind: ResourceKind; name: string } {
  const rest = key.slice(RESOURCES_PREFIX.length);
  const slash = rest.indexOf('/');
  return { kind: rest.slice(0, slash) as ResourceKind, name: rest.slice(slash + 1) };
}
