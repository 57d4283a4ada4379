// The master's updates to one worker (src/agent/workers/update-flow.ts): one write at a time; a
// newer snapshot merges into a waiting one; certificates are all delivered, in order.
import { describe, expect, it } from 'vitest';
import { applyChanges, type MapChanges } from '../../src/agent/workers/mirror-delta.js';
import { mergeSnapshots, UpdateFlow } from '../../src/agent/workers/update-flow.js';
import type { MirroredSnapshot, MirrorUpdate } from '../../src/agent/workers/worker-messages.js';
import type { EffectivePolicy } from '../../src/api/resources/traffic-policy-scopes.js';
import type { ViewResource } from '../../src/controlplane-client/mesh-view.js';

/** Version n's changes from version n - 1 (none: a test of order only). */
const changes = (n: number): MirroredSnapshot => ({
  version: n,
  baseVersion: n - 1,
  trustBundlePem: `bundle ${n}`,
  resources: { set: new Map(), removed: [] },
  services: { set: new Map(), removed: [] },
});
const snapshot = (n: number): MirrorUpdate => ({
  type: 'snapshot',
  snapshot: changes(n),
  trustBundlePem: `bundle ${n}`,
});
const certificate = (n: number): MirrorUpdate => ({
  type: 'certificate',
  role: { kind: 'node' },
  identity: { serial: String(n) } as never,
  trustBundlePem: `bundle ${n}`,
});
const name = (u: MirrorUpdate) => `${u.type[0]}${u.trustBundlePem.split(' ')[1]}`;

/** A flow over a channel that completes writes only when told to. */
function harness() {
  const written: string[] = [];
  const pending: (() => void)[] = [];
  const flow = new UpdateFlow((u, done) => {
    written.push(name(u));
    pending.push(done);
  });
  return { flow, written, finish: () => pending.shift()?.() };
}

describe('UpdateFlow', () => {
  it.each([
    // offered while the first write is in flight -> what the worker gets, in order
    [
      'snapshots: the newest waits, merged with those before it',
      [snapshot(1), snapshot(2), snapshot(3)],
      ['s1', 's3'],
    ],
    [
      'certificates: every one, in order',
      [certificate(1), certificate(2), certificate(3)],
      ['c1', 'c2', 'c3'],
    ],
    [
      'a newer snapshot merges into the waiting one and follows the certificates before it',
      [snapshot(1), snapshot(2), certificate(3), snapshot(4)],
      ['s1', 'c3', 's4'],
    ],
    ['one snapshot: written at once', [snapshot(1)], ['s1']],
  ])('%s', (_what, offered, delivered) => {
    const { flow, written, finish } = harness();
    for (const u of offered) flow.offer(u);
    expect(written).toEqual([name(offered[0]!)]); // one write at a time
    while (flow.backlog > 0) finish();
    finish();
    expect(written).toEqual(delivered);
  });

  it('writes again at once after the channel took the last one', () => {
    const { flow, written, finish } = harness();
    flow.offer(snapshot(1));
    finish();
    flow.offer(snapshot(2));
    expect(written).toEqual(['s1', 's2']);
  });

  it('ignores a second completion of one write', () => {
    const written: string[] = [];
    let done: (() => void) | undefined;
    const flow = new UpdateFlow((u, d) => {
      written.push(name(u));
      done = d;
    });
    flow.offer(snapshot(1));
    flow.offer(snapshot(2));
    const first = done!;
    first();
    flow.offer(snapshot(3)); // waits: s2 is being written
    first(); // a stray second call must not start s3 beside s2
    expect(written).toEqual(['s1', 's2']);
  });
});

describe('snapshot changes merged while they wait', () => {
  const resource = (name: string, doc: Record<string, unknown> = {}): ViewResource => ({
    kind: 'Workload',
    name,
    doc,
  });
  const policy = (name: string) => ({ spec: { name } }) as unknown as EffectivePolicy;
  const step = (
    version: number,
    set: [string, ViewResource][],
    removed: string[],
    services: MapChanges<EffectivePolicy> = { set: new Map(), removed: [] },
    mesh?: { policy: EffectivePolicy | undefined },
  ): MirroredSnapshot => ({
    version,
    baseVersion: version - 1,
    trustBundlePem: `b${version}`,
    resources: { set: new Map(set), removed },
    services,
    ...(mesh ? { mesh } : {}),
  });
  /** What a worker holds after applying these in turn (as session-mirror.ts does). */
  const held = (...steps: MirroredSnapshot[]) => {
    const resources = new Map<string, ViewResource>([
      ['a', resource('a')],
      ['b', resource('b')],
    ]);
    const services = new Map<string, EffectivePolicy>([['web', policy('web-1')]]);
    let mesh: EffectivePolicy | undefined;
    for (const s of steps) {
      applyChanges(resources, s.resources);
      applyChanges(services, s.services);
      if (s.mesh) mesh = s.mesh.policy;
    }
    return { resources, services, mesh };
  };

  it.each([
    ['set, then removed', step(2, [['c', resource('c')]], []), step(3, [], ['c'])],
    ['removed, then set again', step(2, [], ['a']), step(3, [['a', resource('a', { v: 3 })]], [])],
    [
      'each sets and removes others',
      step(2, [['a', resource('a', { v: 2 })]], ['b']),
      step(3, [['d', resource('d')]], ['a']),
    ],
    [
      'policies: one replaced, one removed, the Mesh set once',
      step(
        2,
        [],
        [],
        { set: new Map([['api', policy('api-1')]]), removed: [] },
        {
          policy: policy('mesh-1'),
        },
      ),
      step(3, [], [], { set: new Map([['web', policy('web-2')]]), removed: ['api'] }),
    ],
  ])('%s: the same as applying them in turn', (_what, first, second) => {
    const merged = mergeSnapshots(first, second);
    expect(merged.version).toBe(3);
    expect(merged.baseVersion).toBe(1);
    expect(merged.trustBundlePem).toBe('b3');
    expect(held(merged)).toEqual(held(first, second));
  });

  it('a whole snapshot after changes replaces them', () => {
    const whole: MirroredSnapshot = {
      ...step(3, [['x', resource('x')]], []),
      baseVersion: undefined,
    };
    expect(mergeSnapshots(step(2, [['c', resource('c')]], []), whole)).toBe(whole);
  });
});
