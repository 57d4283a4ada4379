// The agent's snapshot rule: a SyncResponse is applied only when versions line up and every
// resource and the whole result validate; otherwise the reason says what is wrong.
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../src/api/csr.js';
import { ecdsaP256, x509 } from '../../src/api/x509.js';
import { meshView } from '../../src/controlplane-client/mesh-view.js';
import { snapshotRules } from '../../src/controlplane-client/resource-rules.js';
import {
  applyDelta,
  type Snapshot,
  type SyncDelta,
  type WireResource,
} from '../../src/controlplane-client/snapshot.js';

let bundle = '';

beforeAll(async () => {
  const keys = await generateKeyPair();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=test-ca',
    keys,
    signingAlgorithm: ecdsaP256,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  bundle = ca.toString('pem');
});

const doc = (kind: string, name: string, spec: unknown, status?: unknown): WireResource => ({
  kind,
  name,
  revision: 1,
  json: JSON.stringify({
    apiVersion: 'weft/v1',
    kind,
    metadata: { name },
    spec,
    ...(status ? { status } : {}),
  }),
});
const service = (name: string, vip?: string) =>
  doc(
    'Service',
    name,
    { ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] },
    vip ? { vip } : undefined,
  );
const workload = (name: string, svc: string, node: string, address: string) =>
  doc('Workload', name, { service: svc, node, address, port: 8080, health: 'healthy' });

const full = (version: number, upserts: WireResource[]): SyncDelta => ({
  version,
  baseVersion: 0,
  full: true,
  upserts,
  removals: [],
  trustBundlePem: bundle,
});
const delta = (
  baseVersion: number,
  version: number,
  upserts: WireResource[],
  removals: { kind: string; name: string }[] = [],
): SyncDelta => ({
  version,
  baseVersion,
  full: false,
  upserts,
  removals,
  trustBundlePem: '',
});

function accepted(current: Snapshot | undefined, d: SyncDelta): Snapshot {
  const r = applyDelta(current, d, snapshotRules);
  if (!r.ok) throw new Error(`rejected: ${r.reason}`);
  return r.snapshot;
}

describe('applyDelta', () => {
  it('takes a full snapshot and builds services with VIPs and their endpoints', () => {
    const s = accepted(
      undefined,
      full(5, [service('echo', '240.240.0.1'), workload('a-echo-8080', 'echo', 'a', '10.0.0.1')]),
    );
    expect(s.version).toBe(5);
    const view = meshView(s);
    expect(view.services.get('echo')?.vip).toBe('240.240.0.1');
    expect(view.services.get('echo')?.ports[0]).toMatchObject({
      port: 80,
      targetPort: 8080,
      protocol: 'http',
    });
    expect(view.servicesByVip.get('240.240.0.1')?.name).toBe('echo');
    expect(view.endpoints.get('echo')?.map((e) => e.address)).toEqual(['10.0.0.1']);
    expect(view.trustBundlePem).toBe(bundle);
  });

  it('applies a delta on its base: upserts, removals, and keeps the trust bundle', () => {
    const s1 = accepted(
      undefined,
      full(5, [service('echo', '240.240.0.1'), workload('a-echo-8080', 'echo', 'a', '10.0.0.1')]),
    );
    const s2 = accepted(
      s1,
      delta(
        5,
        7,
        [workload('b-echo-8080', 'echo', 'b', '10.0.0.2')],
        [{ kind: 'Workload', name: 'a-echo-8080' }],
      ),
    );
    expect(s2.version).toBe(7);
    expect(
      meshView(s2)
        .endpoints.get('echo')
        ?.map((e) => e.node),
    ).toEqual(['b']);
    expect(s2.trustBundlePem).toBe(bundle);
    // The previous snapshot object is untouched: readers holding it see a consistent version.
    expect(
      meshView(s1)
        .endpoints.get('echo')
        ?.map((e) => e.node),
    ).toEqual(['a']);
  });

  it('replaces everything with a later full snapshot', () => {
    const s1 = accepted(undefined, full(5, [service('echo', '240.240.0.1')]));
    const s2 = accepted(s1, full(9, [service('web', '240.240.0.2')]));
    expect([...meshView(s2).services.keys()]).toEqual(['web']);
  });

  const s0 = () => accepted(undefined, full(5, [service('echo', '240.240.0.1')]));

  it.each<[string, () => SyncDelta, RegExp, boolean]>([
    [
      'a delta on another base',
      () => delta(4, 6, []),
      /base version 4 does not match the held version 5/,
      true,
    ],
    [
      'a delta that changes things without a new version',
      () => delta(5, 5, [service('web')]),
      /changes resources without a new version/,
      true,
    ],
    ['a delta that goes back', () => delta(5, 4, []), /goes back from its base 5/, true],
    [
      'a service port out of range',
      () => delta(5, 6, [doc('Service', 'bad', { ports: [{ port: 70000 }] })]),
      /Service\/bad: spec\.ports\[0\]\.port: must be/,
      false,
    ],
    [
      'a document whose kind differs from its key',
      () => delta(5, 6, [{ ...service('x'), kind: 'Mesh' }]),
      /Mesh\/x: document kind "Service"/,
      false,
    ],
    [
      'a document whose name differs from its key',
      () => delta(5, 6, [{ ...service('x'), name: 'y' }]),
      /Service\/y: metadata\.name "x"/,
      false,
    ],
    [
      'JSON that does not parse',
      () => delta(5, 6, [{ kind: 'Service', name: 'x', revision: 1, json: '{' }]),
      /Service\/x: not valid JSON/,
      false,
    ],
    [
      'two services on one VIP',
      () => delta(5, 6, [service('web', '240.240.0.1')]),
      /share the virtual IP 240\.240\.0\.1/,
      false,
    ],
    [
      'a VIP that is not an address',
      () => delta(5, 6, [service('web', 'nope')]),
      /status\.vip "nope" is not an IPv4/,
      false,
    ],
    [
      'two Mesh resources',
      () => delta(5, 6, [doc('Mesh', 'a', {}), doc('Mesh', 'b', {})]),
      /more than one Mesh/,
      false,
    ],
    [
      'a workload with a bad address',
      () => delta(5, 6, [workload('w', 'echo', 'a', 'not-an-ip')]),
      /spec\.address: must be an IPv4 or IPv6/,
      false,
    ],
    [
      'the same key upserted and removed',
      () => delta(5, 6, [service('web')], [{ kind: 'Service', name: 'web' }]),
      /both upserted and removed/,
      false,
    ],
    [
      'a trust bundle that is not PEM',
      () => ({ ...delta(5, 6, []), trustBundlePem: 'garbage' }),
      /trust bundle holds no certificate/,
      false,
    ],
  ])('rejects %s and says why', (_name, make, reason, resync) => {
    const current = s0();
    const r = applyDelta(current, make(), snapshotRules);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(reason);
    expect(r.resync ?? false).toBe(resync);
    // The held snapshot is unchanged.
    expect(current.version).toBe(5);
    expect([...current.resources.keys()]).toEqual(['Service/echo']);
  });

  it('rejects a full snapshot without a trust bundle, and a delta with nothing to apply on', () => {
    const r1 = applyDelta(undefined, { ...full(3, []), trustBundlePem: '' }, snapshotRules);
    expect(r1.ok || r1.reason).toMatch(/carries no trust bundle/);
    const r2 = applyDelta(undefined, delta(2, 3, []), snapshotRules);
    expect(r2.ok || r2.reason).toMatch(/no snapshot is held/);
  });

  it('takes an empty delta on the held version as "up to date", with nothing to store', () => {
    const current = s0();
    const r = applyDelta(current, delta(5, 5, []), snapshotRules);
    expect(r).toMatchObject({ ok: true, unchanged: true });
    if (r.ok) expect(r.snapshot.resources).toBe(current.resources);
  });

  it('tolerates removing what it does not hold (a retransmission)', () => {
    const s = accepted(s0(), delta(5, 6, [], [{ kind: 'Service', name: 'gone' }]));
    expect(s.version).toBe(6);
  });

  it('keeps a kind it does not know as it came, and does not use it', () => {
    const s = accepted(s0(), delta(5, 6, [doc('FutureThing', 'x', { anything: true })]));
    expect(s.resources.has('FutureThing/x')).toBe(true);
    expect(meshView(s).policies.get('FutureThing')?.[0]?.name).toBe('x');
  });
});
