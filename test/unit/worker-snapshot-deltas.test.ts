// The master's snapshots to its workers (session-publisher.ts -> session-mirror.ts), through
// the same messages the IPC channel carries: a worker gets what changed since the version it
// holds and keeps its objects of the rest, so what its data plane compiled from an unchanged
// TrafficPolicy (a service's retry policy and budget) is not compiled again, and a change of one
// endpoint among thousands does not send (and decode) them all.
import { EventEmitter } from 'node:events';
import { serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { SessionMirror } from '../../src/agent/workers/session-mirror.js';
import { SessionPublisher } from '../../src/agent/workers/session-publisher.js';
import type { MirrorUpdate } from '../../src/agent/workers/worker-messages.js';
import { type MeshView, meshView } from '../../src/controlplane-client/mesh-view.js';
import { snapshotRules } from '../../src/controlplane-client/resource-rules.js';
import type { ControlPlaneSession } from '../../src/controlplane-client/session.js';
import type { Snapshot, SnapshotResource } from '../../src/controlplane-client/snapshot.js';
import { MeshState } from '../../src/proxy/mesh-state.js';
import { Resilience } from '../../src/proxy/resilience/resilience.js';
import { Registry } from '../../src/telemetry/prom.js';
import { serviceDoc, workloadDoc } from '../helpers/mesh-views.js';

type Doc = Record<string, unknown>;

/**
 * The snapshot holding `docs`, as applyDelta makes it from `previous`: a resource whose
 * document did not change keeps its object.
 */
function snapshotOf(docs: readonly Doc[], version: number, previous?: Snapshot): Snapshot {
  const resources = new Map<string, SnapshotResource>();
  for (const doc of docs) {
    const json = JSON.stringify(doc);
    const key = `${doc.kind}/${(doc.metadata as { name: string }).name}`;
    const before = previous?.resources.get(key);
    if (before?.json === json) {
      resources.set(key, before);
      continue;
    }
    const parsed = snapshotRules.parse(String(doc.kind), doc);
    if (!parsed.ok) throw new Error(`test resource does not validate: ${parsed.reason}`);
    const name = key.split('/')[1]!;
    resources.set(key, { kind: String(doc.kind), name, revision: version, doc: parsed.doc, json });
  }
  return { version, trustBundlePem: 'bundle', resources };
}

/** The master's session, as far as the publisher reads it. */
class Session extends EventEmitter {
  current: Snapshot | undefined;
  private cached: MeshView | undefined;
  readonly certificates = { node: undefined, serviceNames: () => [], service: () => undefined };

  snapshot(): Snapshot | undefined {
    return this.current;
  }

  view(): MeshView | undefined {
    if (this.current && this.cached?.version !== this.current.version)
      this.cached = meshView(this.current);
    return this.cached;
  }

  trustBundle(): string {
    return 'bundle';
  }

  accept(snapshot: Snapshot): void {
    this.current = snapshot;
    this.emit('snapshot', this.view());
  }
}

/** A master's publisher and one worker's mirror joined as worker-pool.ts joins them. */
function masterAndWorker(first: Snapshot) {
  const session = new Session();
  session.current = first;
  const publisher = new SessionPublisher(session as unknown as ControlPlaneSession);
  const mirror = new SessionMirror(publisher.state());
  const sent: MirrorUpdate[] = [];
  publisher.follow((update) => {
    sent.push(update);
    mirror.apply(update);
  });
  return { session, publisher, mirror, sent };
}

const http = [{ port: 80, targetPort: 8080, protocol: 'http' }];
const retries = {
  apiVersion: 'weft/v1',
  kind: 'TrafficPolicy',
  metadata: { name: 'web-retries' },
  spec: { targetRef: { name: 'web' }, retries: { attempts: 2 } },
};

describe('snapshots from the master to a worker', () => {
  it('a TrafficPolicy that did not change keeps its compiled form in the worker', () => {
    const v1 = [serviceDoc('web', '240.240.0.1', http), retries];
    const first = snapshotOf(v1, 1);
    const { session, mirror } = masterAndWorker(first);
    const state = new MeshState('node1', mirror.trafficOf);
    state.update(mirror.view()!);
    mirror.on('snapshot', (view) => state.update(view));
    const resilience = new Resilience(new Registry());
    const compiled = resilience.forService('web', state.trafficPolicy('web'));
    expect(compiled?.policy.retry).toBeDefined();

    // An endpoint registers: a new version, the policy document untouched.
    session.accept(snapshotOf([...v1, workloadDoc('node2', 'web', '10.0.0.2', 8080)], 2, first));
    expect(state.view?.version).toBe(2);
    expect(state.pool('web', 80)?.size).toBe(1);
    expect(resilience.forService('web', state.trafficPolicy('web'))).toBe(compiled);
  });

  it('a change of one endpoint among thousands sends that endpoint, and the view matches', () => {
    const docs: Doc[] = [];
    for (let s = 0; s < 200; s++) {
      docs.push(serviceDoc(`svc${s}`, `240.240.1.${s}`, http));
      for (let n = 0; n < 10; n++)
        docs.push(workloadDoc(`n${n}`, `svc${s}`, `10.1.${n}.${s}`, 8080));
    }
    const first = snapshotOf(docs, 1);
    const { session, publisher, mirror, sent } = masterAndWorker(first);
    const whole = serialize(publisher.state()).byteLength;
    const before = mirror.view()!;

    const changed = docs.map((d) =>
      (d.metadata as { name: string }).name === 'n3-svc7-8080'
        ? workloadDoc('n3', 'svc7', '10.1.3.7', 8080, 'unhealthy')
        : d,
    );
    const removed = changed.filter((d) => (d.metadata as { name: string }).name !== 'n4-svc9-8080');
    const second = snapshotOf(removed, 2, first);
    session.accept(second);

    expect(sent).toHaveLength(1);
    // What the channel carries for this version: a small fraction of the whole snapshot.
    expect(serialize(sent[0]).byteLength).toBeLessThan(whole / 50);
    const view = mirror.view()!;
    expect(view.version).toBe(2);
    expect(view.endpoints.get('svc7')!.find((e) => e.node === 'n3')!.health).toBe('unhealthy');
    expect(view.endpoints.get('svc9')!.map((e) => e.node)).not.toContain('n4');
    // The worker's view is the one the master's session has of the same version.
    expect(view).toEqual(meshView(second));
    // Made in proportion to the change: services it did not touch keep their objects.
    expect(view.endpoints.get('svc8')).toBe(before.endpoints.get('svc8'));
    expect(view.services.get('svc7')).toBe(before.services.get('svc7'));
    expect(view.endpoints.get('svc7')).not.toBe(before.endpoints.get('svc7'));
  });
});
