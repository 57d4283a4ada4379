// weft's resources: schemas (zod), kinds and YAML parsing. See each kind's file for its fields.
export * from './authorization-path.js';
export * from './authorization-policy.js';
export * from './authorization-ports.js';
export * from './common.js';
export * from './grpc-route.js';
export * from './http-route.js';
export * from './kinds.js';
export * from './limits.js';
export * from './mesh.js';
export * from './parse.js';
export * from './revocation.js';
export * from './route-parts.js';
export * from './service.js';
export * from './traffic-policy.js';
export * from './traffic-policy-scopes.js';
export * from './validate.js';
export * from './workload.js';
