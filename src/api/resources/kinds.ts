// The resource kinds, the names the CLI accepts for them (case-insensitive, plurals, short
// names), and the schema of each.
import type { z } from 'zod';
import { type AuthorizationPolicy, authorizationPolicyDocument } from './authorization-policy.js';
import { type GRPCRoute, grpcRouteDocument } from './grpc-route.js';
import { type HTTPRoute, httpRouteDocument } from './http-route.js';
import { type Mesh, meshDocument } from './mesh.js';
import { type Revocation, revocationDocument } from './revocation.js';
import { type Service, serviceDocument } from './service.js';
import { type TrafficPolicy, trafficPolicyDocument } from './traffic-policy.js';
import { type Workload, workloadDocument } from './workload.js';

export const RESOURCE_KINDS = [
  'Mesh',
  'Service',
  'Workload',
  'TrafficPolicy',
  'HTTPRoute',
  'GRPCRoute',
  'AuthorizationPolicy',
  'Revocation',
] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** Kinds only the control plane writes: Workloads (registered by agents) and Revocations. */
export const INTERNAL_KINDS: readonly ResourceKind[] = ['Workload', 'Revocation'];

/** Kinds users apply. */
export const USER_KINDS: readonly ResourceKind[] = RESOURCE_KINDS.filter(
  (k) => !INTERNAL_KINDS.includes(k),
);

export type Resource =
  | Mesh
  | Service
  | Workload
  | TrafficPolicy
  | HTTPRoute
  | GRPCRoute
  | AuthorizationPolicy
  | Revocation;

export interface ResourceByKind {
  Mesh: Mesh;
  Service: Service;
  Workload: Workload;
  TrafficPolicy: TrafficPolicy;
  HTTPRoute: HTTPRoute;
  GRPCRoute: GRPCRoute;
  AuthorizationPolicy: AuthorizationPolicy;
  Revocation: Revocation;
}

export const DOCUMENT_SCHEMAS: Record<ResourceKind, z.ZodType> = {
  Mesh: meshDocument,
  Service: serviceDocument,
  Workload: workloadDocument,
  TrafficPolicy: trafficPolicyDocument,
  HTTPRoute: httpRouteDocument,
  GRPCRoute: grpcRouteDocument,
  AuthorizationPolicy: authorizationPolicyDocument,
  Revocation: revocationDocument,
};

const ALIASES: Record<string, ResourceKind> = {
  mesh: 'Mesh',
  meshes: 'Mesh',
  service: 'Service',
  services: 'Service',
  svc: 'Service',
  workload: 'Workload',
  workloads: 'Workload',
  wl: 'Workload',
  trafficpolicy: 'TrafficPolicy',
  trafficpolicies: 'TrafficPolicy',
  tp: 'TrafficPolicy',
  httproute: 'HTTPRoute',
  httproutes: 'HTTPRoute',
  route: 'HTTPRoute',
  routes: 'HTTPRoute',
  grpcroute: 'GRPCRoute',
  grpcroutes: 'GRPCRoute',
  authorizationpolicy: 'AuthorizationPolicy',
  authorizationpolicies: 'AuthorizationPolicy',
  authz: 'AuthorizationPolicy',
  ap: 'AuthorizationPolicy',
  revocation: 'Revocation',
  revocations: 'Revocation',
};

/** The kind a user typed ("svc", "Services", "httproute"), or undefined. */
export function resolveKind(input: string): ResourceKind | undefined {
  return ALIASES[input.toLowerCase()];
}

/** Lowercase plural for messages and tables ("services"). */
export function kindPlural(kind: ResourceKind): string {
  return kind.endsWith('y')
    ? `${kind.slice(0, -1).toLowerCase()}ies`
    : kind === 'Mesh'
      ? 'meshes'
      : `${kind.toLowerCase()}s`;
}
