// The pure decisions behind issue 10's identity rules, table by table: who may join under which
// name, which registrations a node may make, what a token's state is, how revocations are
// written and read (by serial), and how big a resource may be.
import { describe, expect, it } from 'vitest';
import { canonicalSerial } from '../../src/api/cert-serial.js';
import {
  applySizeProblem,
  documentSizeProblems,
  formatBytes,
  RESOURCE_LIMITS,
  validateResource,
} from '../../src/api/resources/index.js';
import { decideJoin } from '../../src/controlplane/identity/join-decision.js';
import type { NodeRecord } from '../../src/controlplane/identity/node-record.js';
import { liveCerts, withIssued } from '../../src/controlplane/identity/node-record.js';
import { changeServices, placeWorkloads } from '../../src/controlplane/identity/placement.js';
import { revocationCause, revocationDocument } from '../../src/controlplane/identity/revocation.js';
import { type TokenRecord, tokenState } from '../../src/controlplane/identity/tokens.js';
import { meshView } from '../../src/controlplane-client/mesh-view.js';
import type { Snapshot, SnapshotResource } from '../../src/controlplane-client/snapshot.js';

const node = (name: string, services: string[], addresses = ['10.0.0.1']): NodeRecord => ({
  name,
  spiffeId: `spiffe://weft.local/node/${name}`,
  addresses,
  zone: '',
  joinedAtMs: 1,
  tokenId: 'aaaaaaaaaaaa',
  certNotAfterMs: 2,
  services,
});

describe('decideJoin', () => {
  const n1 = node('n1', ['echo']);
  it.each([
    [
      'a token for another node',
      { node: 'n2' },
      'n1',
      undefined,
      { outcome: 'wrong_node', tokenNode: 'n2' },
    ],
    ['an unscoped token', {}, 'n1', undefined, { outcome: 'wrong_node', tokenNode: '' }],
    [
      'a new node',
      { node: 'n1', services: ['web', 'api'] },
      'n1',
      undefined,
      { outcome: 'join', services: ['api', 'web'] },
    ],
    [
      'an existing node without --replace',
      { node: 'n1' },
      'n1',
      n1,
      { outcome: 'node_exists', existing: n1 },
    ],
    [
      'an existing node with replace: false',
      { node: 'n1', replace: false },
      'n1',
      n1,
      { outcome: 'node_exists', existing: n1 },
    ],
    [
      'a rebuilt host (--replace): allowed services kept, the token adds',
      { node: 'n1', services: ['web'], replace: true },
      'n1',
      n1,
      { outcome: 'replace', services: ['echo', 'web'], previous: n1 },
    ],
  ] as const)('%s', (_what, token, hostname, existing, expected) => {
    expect(
      decideJoin(
        token as Pick<TokenRecord, 'node' | 'services' | 'replace'>,
        hostname,
        existing as NodeRecord | undefined,
      ),
    ).toEqual(expected);
  });
});

describe('placeWorkloads', () => {
  const regs = [
    { name: 'web-80', item: { service: 'web' } },
    { name: 'frontend-8080', item: { service: 'frontend' } },
    { name: 'web-81', item: { service: 'web' } },
  ];
  it.each([
    ['everything allowed', ['web', 'frontend'], ['web', 'frontend', 'web'], []],
    ['nothing allowed', [], [], ['frontend-8080', 'web-80', 'web-81']],
    ['one service allowed', ['web'], ['web', 'web'], ['frontend-8080']],
  ] as const)('%s', (_what, allowed, accepted, refused) => {
    const out = placeWorkloads('n2', allowed, regs);
    expect(out.accepted.map((a) => a.service)).toEqual(accepted);
    expect(out.refused.map((r) => r.name).sort()).toEqual([...refused].sort());
    for (const r of out.refused) {
      expect(r.reason).toBe('service_not_allowed');
      expect(r.message).toBe(
        `node n2 may not serve service "${r.service}": allow it on the control plane with \`weft node allow n2 --service ${r.service}\``,
      );
    }
  });

  it.each([
    [['b', 'a'], ['c'], [], ['a', 'b', 'c']],
    [['a', 'b'], [], ['a'], ['b']],
    [['a'], ['a'], [], ['a']],
    [[], [], ['x'], []],
  ] as const)('changeServices(%j, allow %j, disallow %j) = %j', (current, allow, disallow, out) => {
    expect(changeServices(current, allow, disallow)).toEqual(out);
  });
});

describe('tokenState', () => {
  const base: TokenRecord = {
    id: '0123456789ab',
    secretHash: 'x',
    description: '',
    createdAtMs: 0,
    expiresAtMs: 100,
    node: 'n1',
  };
  it.each([
    ['fresh', {}, 50, 'unused'],
    ['expired', {}, 100, 'expired'],
    ['used (also once expired)', { usedAtMs: 10, usedBy: 'n1' }, 200, 'used'],
    ['revoked', { revokedAtMs: 20 }, 50, 'revoked'],
    ['revoked, then expired', { revokedAtMs: 20 }, 200, 'revoked'],
  ] as const)('%s', (_what, change, now, state) => {
    expect(tokenState({ ...base, ...change }, now)).toBe(state);
  });
});

describe('revocations', () => {
  it.each([
    ['0A1B', 'a1b'],
    ['00:ff:10', 'ff10'],
    ['000', '0'],
    ['abc', 'abc'],
  ])('canonicalSerial(%s) = %s', (given, canonical) => {
    expect(canonicalSerial(given)).toBe(canonical);
  });

  it('records issued certificates and prunes the expired ones', () => {
    const r = withIssued(
      { ...node('n1', []), certs: [{ serial: 'a', notAfterMs: 5, kind: 'node' }] },
      { serial: 'b', notAfterMs: 50, kind: 'workload', service: 'web' },
      10,
    );
    expect(r.certs).toEqual([{ serial: 'b', notAfterMs: 50, kind: 'workload', service: 'web' }]);
    expect(liveCerts(r, 50)).toEqual([]);
  });

  it('writes one valid Revocation per event, none when nothing is live', () => {
    expect(revocationDocument('n1', 'deleted', [], 1_000)).toBeUndefined();
    const doc = revocationDocument(
      'n1',
      'disallowed',
      [{ serial: 'ff', notAfterMs: 86_400_000, kind: 'workload', service: 'web' }],
      1_000,
      { services: ['web'], attempt: 1 },
    );
    expect(doc).toEqual({
      apiVersion: 'weft/v1',
      kind: 'Revocation',
      metadata: { name: 'n1.disallowed.rs-1' },
      spec: {
        node: 'n1',
        reason: 'disallowed',
        services: ['web'],
        revokedAt: '1970-01-01T00:00:01.000Z',
        certificates: [{ serial: 'ff', notAfter: '1970-01-02T00:00:00.000Z' }],
      },
    });
    expect(validateResource(doc, { allowInternal: true }).ok).toBe(true);
    // Users cannot write one.
    expect(validateResource(doc)).toMatchObject({
      ok: false,
      problems: [
        'kind: Revocation resources are written by the control plane and cannot be applied',
      ],
    });
  });

  it.each([
    ['deleted', undefined, 'node n1 was removed from the mesh'],
    ['left', undefined, 'node n1 left the mesh'],
    ['replaced', undefined, 'node n1 was replaced by a re-join'],
    ['disallowed', ['a', 'b'], 'node n1 may no longer serve a, b'],
  ] as const)('names the cause: %s', (reason, services, text) => {
    expect(revocationCause('n1', reason, services)).toBe(text);
  });

  it('gives the data path the serials that have not expired', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const revocation = revocationDocument(
      'n1',
      'deleted',
      [
        { serial: 'aa', notAfterMs: now + 1, kind: 'node' },
        { serial: 'bb', notAfterMs: now - 1, kind: 'workload', service: 'web' },
      ],
      now - 10,
    )!;
    const resource: SnapshotResource = {
      kind: 'Revocation',
      name: revocation.metadata.name,
      revision: 1,
      doc: revocation as unknown as Record<string, unknown>,
      json: JSON.stringify(revocation),
    };
    const snapshot: Snapshot = {
      version: 1,
      trustBundlePem: '',
      resources: new Map([[`Revocation/${resource.name}`, resource]]),
    };
    const view = meshView(snapshot, now);
    expect([...view.revokedSerials]).toEqual(['aa']);
    expect(view.policies.has('Revocation')).toBe(false);
  });
});

describe('resource size limits', () => {
  const service = (annotation: number) => ({
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name: 's', annotations: { note: 'x'.repeat(annotation) } },
    spec: { ports: [{ port: 80 }] },
  });
  it.each([
    ['a small document', 10, []],
    [
      'labels and annotations over 64 KiB',
      70 * 1024,
      ['metadata.labels and metadata.annotations hold 70.0 KiB, over the limit of 64 KiB'],
    ],
    [
      'a document over 256 KiB',
      300 * 1024,
      [
        '300.1 KiB of JSON, over the limit of 256 KiB per resource',
        'metadata.labels and metadata.annotations hold 300.0 KiB, over the limit of 64 KiB',
      ],
    ],
  ] as const)('%s', (_what, size, problems) => {
    expect(documentSizeProblems(service(size))).toEqual(problems);
  });

  it.each([
    [RESOURCE_LIMITS.applyBytes, undefined],
    [
      RESOURCE_LIMITS.applyBytes + 1,
      '4.0 MiB of JSON in one apply, over the limit of 4 MiB: apply fewer resources at a time',
    ],
  ])('an apply of %i bytes: %s', (bytes, problem) => {
    expect(applySizeProblem(bytes)).toBe(problem);
  });

  it.each([
    [12, '12 bytes'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [4 * 1024 * 1024, '4 MiB'],
  ])('formatBytes(%i) = %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
