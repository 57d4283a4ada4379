// The master's decisions about its workers: how many, when to replace one that died, what a
// ready or dead worker means for the generations, and the workers' numbers merged as one agent.
import { deserialize, serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { restartDelay } from '../../src/agent/workers/crash-backoff.js';
import { afterExit, afterReady, type GenerationView } from '../../src/agent/workers/generations.js';
import {
  aggregatorFor,
  mergeMetrics,
  retiredMetrics,
} from '../../src/agent/workers/metrics-merge.js';
import { mergeReadouts, retiredPart } from '../../src/agent/workers/readout-merge.js';
import { reloadRefusal } from '../../src/agent/workers/reload-check.js';
import { SessionMirror } from '../../src/agent/workers/session-mirror.js';
import { slotCount, workerCount } from '../../src/agent/workers/worker-count.js';
import type { MirroredSnapshot } from '../../src/agent/workers/worker-messages.js';
import type { EffectivePolicy } from '../../src/api/resources/traffic-policy-scopes.js';
import type { Identity } from '../../src/controlplane-client/identity-store.js';
import type { ResolvedTraffic } from '../../src/proxy/mesh-state.js';
import type { Tally } from '../../src/telemetry/stats-readout.js';

describe('worker count', () => {
  it.each([
    { configured: undefined, cpus: 4, want: 4 },
    { configured: undefined, cpus: 1, want: 1 },
    { configured: undefined, cpus: 0, want: 1 },
    { configured: undefined, cpus: 1000, want: 256 },
    { configured: 3, cpus: 64, want: 3 },
  ])('configured $configured on $cpus cpus: $want', ({ configured, cpus, want }) => {
    expect(workerCount(configured, cpus)).toBe(want);
  });

  // Every socket of systemd's SO_REUSEPORT group gets a worker: the kernel hashes connections
  // to each, and one nobody accepts on would hold its share.
  it.each([
    { configured: 2, passed: 0, cpus: 4, want: 2 },
    { configured: undefined, passed: 2, cpus: 2, want: 2 },
    { configured: 1, passed: 2, cpus: 2, want: 2 },
    { configured: 4, passed: 2, cpus: 2, want: 4 },
  ])('slots: configured $configured, $passed sockets passed per port: $want', (c) => {
    expect(slotCount(c.configured, c.passed, c.cpus)).toBe(c.want);
  });

  it.each([0, 257, 1.5, -1])('agent.yaml workers: %s is refused, naming the field', (n) => {
    expect(() => parseAgentConfig(`workers: ${n}`, 'agent.yaml')).toThrow(/agent.yaml: workers/);
  });

  it('drain.maxMs defaults to 15 minutes; drainMs (SIGTERM) stays', () => {
    const c = parseAgentConfig('drainMs: 5000', 'agent.yaml');
    expect(c.drain.maxMs).toBe(900_000);
    expect(c.drainMs).toBe(5_000);
    expect(() => parseAgentConfig('drain: { maxMs: 0 }', 'agent.yaml')).toThrow(/drain.maxMs/);
    expect(() => parseAgentConfig('drain: { max: 1 }', 'agent.yaml')).toThrow(/drain/);
  });
});

describe('crash backoff', () => {
  const policy = { windowMs: 30_000, baseMs: 250, maxMs: 10_000 };
  it.each([
    { crashes: [1_000], now: 1_000, delay: 0 },
    { crashes: [1_000, 2_000], now: 2_000, delay: 250 },
    { crashes: [1_000, 2_000, 3_000], now: 3_000, delay: 500 },
    { crashes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], now: 9, delay: 10_000 },
    // The older crash left the window: a lone crash again.
    { crashes: [0, 40_000], now: 40_000, delay: 0 },
  ])('crashes at $crashes: replaced after $delay ms', ({ crashes, now, delay }) => {
    expect(restartDelay(crashes, now, policy).delayMs).toBe(delay);
  });

  it('forgets crashes older than the window', () => {
    expect(restartDelay([0, 40_000], 40_000, policy).recent).toEqual([40_000]);
  });
});

describe('generations', () => {
  const gen = (id: number, state: GenerationView['state'], ready: number, size = 2) => ({
    id,
    state,
    size,
    ready,
  });

  it.each([
    {
      name: 'new one not all ready',
      gens: [gen(1, 'serving', 2), gen(2, 'starting', 1)],
      id: 2,
      retire: [],
    },
    {
      name: 'new one all ready',
      gens: [gen(1, 'serving', 2), gen(2, 'starting', 2)],
      id: 2,
      retire: [1],
    },
    {
      name: 'two reloads in a row',
      gens: [gen(1, 'retiring', 2), gen(2, 'serving', 2), gen(3, 'starting', 2)],
      id: 3,
      retire: [2],
    },
    { name: 'the first generation', gens: [gen(1, 'starting', 2)], id: 1, retire: [] },
    { name: 'a replacement in a serving one', gens: [gen(1, 'serving', 2)], id: 1, retire: [] },
  ])('ready: $name', ({ gens, id, retire }) => {
    expect(afterReady(gens, id)).toEqual(retire);
  });

  it.each([
    {
      name: 'serving worker died',
      gens: [gen(1, 'serving', 1)],
      id: 1,
      ready: true,
      stopping: false,
      kind: 'replace',
    },
    {
      name: 'retiring worker done',
      gens: [gen(1, 'retiring', 0), gen(2, 'serving', 2)],
      id: 1,
      ready: true,
      stopping: false,
      kind: 'none',
    },
    {
      name: 'new worker died before ready',
      gens: [gen(1, 'serving', 2), gen(2, 'starting', 0)],
      id: 2,
      ready: false,
      stopping: false,
      kind: 'abandon',
    },
    {
      name: 'first worker died before ready',
      gens: [gen(1, 'starting', 0)],
      id: 1,
      ready: false,
      stopping: false,
      kind: 'replace',
    },
    {
      name: 'exit while the agent stops',
      gens: [gen(1, 'serving', 2)],
      id: 1,
      ready: true,
      stopping: true,
      kind: 'none',
    },
  ])('exit: $name', ({ gens, id, ready, stopping, kind }) => {
    expect(afterExit(gens, id, ready, stopping).kind).toBe(kind);
  });
});

describe('metrics of the whole agent', () => {
  const counter = (value: number) => [
    {
      name: 'weft_tcp_open_total',
      help: 'h',
      type: 'counter',
      values: [{ value, labels: {} }],
      aggregator: 'sum',
    },
    {
      name: 'weft_balancer_endpoints',
      help: 'h',
      type: 'gauge',
      values: [{ value: 3, labels: { service: 'a' } }],
      aggregator: 'sum',
    },
  ];

  it('sums counters, takes the view gauges once', async () => {
    const text = await mergeMetrics([counter(2), counter(5)]).metrics();
    expect(text).toMatch(/^weft_tcp_open_total 7$/m);
    expect(text).toMatch(/^weft_balancer_endpoints\{service="a"\} 3$/m);
  });

  it("keeps an exited worker's counters (added to the live ones), not its gauges", async () => {
    const text = await mergeMetrics([counter(2), retiredMetrics(counter(5))]).metrics();
    expect(text).toMatch(/^weft_tcp_open_total 7$/m);
    expect(retiredMetrics(counter(5)).map((m) => (m as { name: string }).name)).toEqual([
      'weft_tcp_open_total',
    ]);
  });

  it.each([
    { name: 'weft_balancer_endpoints', declared: 'sum', want: 'first' },
    { name: 'weft_tcp_open_connections', declared: undefined, want: 'sum' },
    { name: 'nodejs_version_info', declared: 'first', want: 'first' },
    { name: 'nodejs_eventloop_lag_p99_seconds', declared: undefined, want: 'max' },
    { name: 'nodejs_eventloop_lag_min_seconds', declared: undefined, want: 'min' },
  ])('$name aggregates by $want', ({ name, declared, want }) => {
    expect(aggregatorFor(name, declared)).toBe(want);
  });

  const tally = (requests: number, inFlight: number): Tally => ({
    kind: 'http' as Tally['kind'],
    src: 'a',
    dst: 'b',
    route: '',
    requests,
    successes: requests,
    buckets: [requests, 0],
    inFlight,
    tcpOpened: 0,
    tcpOpen: inFlight,
    bytesIn: 10,
    bytesOut: 1,
  });

  it('merges readouts; an exited worker leaves its counts, not its gauges', () => {
    const retired = retiredPart(new Map([['k', tally(4, 2)]]));
    const merged = mergeReadouts([retired, new Map([['k', tally(3, 1)]])]).get('k')!;
    expect(merged).toMatchObject({
      requests: 7,
      successes: 7,
      inFlight: 1,
      tcpOpen: 1,
      bytesIn: 20,
    });
    expect(merged.buckets).toEqual([7, 0]);
  });
});

describe('session mirror', () => {
  const identity = (spiffeId: string): Identity => ({
    spiffeId,
    keyPem: 'key',
    certPem: 'cert',
    info: {
      serial: '1',
      notBefore: new Date(0),
      notAfter: new Date(1),
    } as unknown as Identity['info'],
  });
  /** A whole snapshot as the master sends it: with no TrafficPolicy, none in effect. */
  const mirrored = (version: number, traffic: ResolvedTraffic = noTraffic): MirroredSnapshot =>
    deserialize(
      serialize({
        version,
        baseVersion: undefined,
        trustBundlePem: `bundle-${version}`,
        resources: { set: new Map(), removed: [] },
        services: { set: new Map(traffic.services), removed: [] },
        mesh: { policy: traffic.mesh },
      } satisfies MirroredSnapshot),
    );
  const noTraffic: ResolvedTraffic = { mesh: undefined, services: new Map() };

  it('starts from the master state and follows its updates, announcing each', () => {
    const node = identity('spiffe://td/node/a');
    const mirror = new SessionMirror({
      snapshot: mirrored(3),
      trustBundlePem: 'join-bundle',
      node,
      services: [['web', identity('spiffe://td/svc/web')]],
    });
    expect(mirror.view()?.version).toBe(3);
    expect(mirror.trustBundle()).toBe('bundle-3');
    expect(mirror.certificates.node?.spiffeId).toBe('spiffe://td/node/a');
    expect(mirror.certificates.service('web')?.spiffeId).toBe('spiffe://td/svc/web');
    expect(mirror.certificates.service('db')).toBeUndefined();

    const seen: string[] = [];
    mirror.on('snapshot', (v) => seen.push(`snapshot ${v.version}`));
    mirror.on('certificate', (i) => seen.push(`certificate ${i.spiffeId}`));
    mirror.apply({
      type: 'snapshot',
      snapshot: mirrored(4),
      trustBundlePem: 'bundle-4',
    });
    const renewed = identity('spiffe://td/node/a');
    mirror.apply({
      type: 'certificate',
      role: { kind: 'node' },
      identity: renewed,
      trustBundlePem: 'bundle-4',
    });
    mirror.apply({
      type: 'certificate',
      role: { kind: 'service', service: 'db' },
      identity: identity('spiffe://td/svc/db'),
      trustBundlePem: 'bundle-4',
    });
    expect(seen).toEqual([
      'snapshot 4',
      'certificate spiffe://td/node/a',
      'certificate spiffe://td/svc/db',
    ]);
    expect(mirror.view()?.version).toBe(4);
    expect(mirror.certificates.node).toBe(renewed);
    expect(mirror.certificates.service('db')?.spiffeId).toBe('spiffe://td/svc/db');
  });

  it("hands the data plane the master's TrafficPolicies of each view, computing none", () => {
    const retries = {
      spec: { targetRef: { kind: 'Service', name: 'web' }, retries: { attempts: 2 } },
      from: { 'retries.attempts': { scope: 'Service', policy: 'web-retries' } },
    } as unknown as EffectivePolicy;
    const mirror = new SessionMirror({
      snapshot: mirrored(5, { mesh: undefined, services: new Map([['web', retries]]) }),
      trustBundlePem: 'join',
      node: undefined,
      services: [],
    });
    const first = mirror.view()!;
    expect(mirror.trafficOf(first).services.get('web')).toEqual(retries);
    mirror.apply({ type: 'snapshot', snapshot: mirrored(6), trustBundlePem: 'b' });
    expect(mirror.trafficOf(mirror.view()!).services.size).toBe(0);
    // A view it did not decode has no policies from the master: a bug, said loudly.
    expect(() => mirror.trafficOf({ ...first })).toThrow(/did not send/);
  });

  it('before any snapshot: no view, the trust bundle from joining', () => {
    const mirror = new SessionMirror({
      snapshot: undefined,
      trustBundlePem: 'join',
      node: undefined,
      services: [],
    });
    expect(mirror.view()).toBeUndefined();
    expect(mirror.trustBundle()).toBe('join');
  });
});

describe('what a reload can change', () => {
  const base = parseAgentConfig('hostname: h', 'agent.yaml');
  it.each([
    { change: 'workers: 3', refused: undefined },
    { change: 'drainMs: 5000\ndrain: { maxMs: 1000 }', refused: undefined },
    { change: 'workloads: [{ service: web, port: 8080 }]', refused: undefined },
    { change: 'logLevel: debug', refused: undefined },
    { change: 'capture: { outboundPort: 16001 }', refused: /capture \(the listening sockets/ },
    { change: 'dataDir: /tmp/x', refused: /dataDir/ },
  ])('$change', ({ change, refused }) => {
    const next = parseAgentConfig(`hostname: h\n${change}`, 'agent.yaml');
    const why = reloadRefusal(base, next);
    if (refused === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(refused);
  });
});

describe('a first generation that refuses its config', () => {
  const starting = [{ id: 1, state: 'starting' as const, size: 2, ready: 0 }];
  it('gives up (EX_CONFIG) instead of a restart loop', () => {
    expect(afterExit(starting, 1, false, false, true).kind).toBe('give-up');
  });
  it('replaces a worker that crashed otherwise', () => {
    expect(afterExit(starting, 1, false, false, false).kind).toBe('replace');
  });
  it('a reload whose worker refuses the config is abandoned, the serving one stays', () => {
    const gens = [
      { id: 1, state: 'serving' as const, size: 2, ready: 2 },
      { id: 2, state: 'starting' as const, size: 2, ready: 0 },
    ];
    expect(afterExit(gens, 2, false, false, true).kind).toBe('abandon');
  });
});
