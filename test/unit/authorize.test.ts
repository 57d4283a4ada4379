// L4 authorization decisions, table-driven.
import { describe, expect, it } from 'vitest';
import { authorizeL4, type NamedPolicy } from '../../src/proxy/inbound/authorize.js';

const web = 'spiffe://weft.local/svc/web';
const batch = 'spiffe://weft.local/svc/batch';

const allowWeb: NamedPolicy = {
  name: 'allow-web',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'ALLOW',
    rules: [{ from: [{ principals: [web] }] }],
  },
};
const denyBatch: NamedPolicy = {
  name: 'deny-batch',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'DENY',
    rules: [{ from: [{ principals: [batch] }] }],
  },
};
const allowAnyOn80: NamedPolicy = {
  name: 'any-80',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'ALLOW',
    rules: [{ from: [{ principals: ['spiffe://weft.local/svc/*'] }], to: [{ ports: [80] }] }],
  },
};
const allowGetOnly: NamedPolicy = {
  name: 'get-only',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'ALLOW',
    rules: [{ to: [{ methods: ['GET'] }] }],
  },
};
const denyPost: NamedPolicy = {
  name: 'deny-post',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'DENY',
    rules: [{ to: [{ methods: ['POST'] }] }],
  },
};
const allowOrdersCalls: NamedPolicy = {
  name: 'orders-calls',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'ALLOW',
    rules: [{ to: [{ grpc: [{ service: 'pkg.Orders' }] }] }],
  },
};
const denyOrdersDelete: NamedPolicy = {
  name: 'no-delete',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'DENY',
    rules: [{ to: [{ grpc: [{ service: 'pkg.Orders', method: 'Delete' }] }] }],
  },
};
const allowPublicPaths: NamedPolicy = {
  name: 'public',
  spec: {
    targetRef: { kind: 'Service', name: 'echo' },
    action: 'ALLOW',
    rules: [{ to: [{ paths: ['/public*'] }] }],
  },
};

describe('authorizeL4', () => {
  const cases: [string, NamedPolicy[], string | undefined, number, boolean][] = [
    ['no policy allows everyone', [], web, 80, true],
    ['no policy allows plaintext too', [], undefined, 80, true],
    ['ALLOW admits its principal', [allowWeb], web, 80, true],
    ['ALLOW refuses others', [allowWeb], batch, 80, false],
    ['ALLOW refuses plaintext', [allowWeb], undefined, 80, false],
    ['DENY refuses its principal', [denyBatch], batch, 80, false],
    ['DENY alone admits others', [denyBatch], web, 80, true],
    ['DENY wins over ALLOW', [allowAnyOn80, denyBatch], batch, 80, false],
    ['prefix principal and port match', [allowAnyOn80], batch, 80, true],
    ['port outside the rule', [allowAnyOn80], batch, 81, false],
    ['ALLOW needing L7 fails closed at L4', [allowGetOnly], web, 80, false],
    ['DENY with L7 fields fails closed at L4', [denyPost], web, 80, false],
    ['ALLOW with paths fails closed at L4', [allowPublicPaths], web, 80, false],
    ['ALLOW with gRPC calls fails closed at L4', [allowOrdersCalls], web, 80, false],
    ['DENY with gRPC calls fails closed at L4', [allowWeb, denyOrdersDelete], web, 80, false],
  ];
  it.each(cases)('%s', (_name, policies, principal, port, allowed) => {
    expect(authorizeL4(policies, { principal, port }).allow).toBe(allowed);
  });

  it('names the policy that denied', () => {
    expect(authorizeL4([denyBatch], { principal: batch, port: 80 })).toEqual({
      allow: false,
      reason: 'denied by AuthorizationPolicy deny-batch',
      policy: 'deny-batch',
    });
  });
});
