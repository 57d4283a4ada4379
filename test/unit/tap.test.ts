// weft tap's decisions: a filter parsed once (every wrong field named) and matched per record,
// the rate limit on a driven clock, header redaction, which agents a control plane tap asks,
// and the hub that copies records for taps off the request path.
import { describe, expect, it } from 'vitest';
import { tapLine } from '../../src/cli/commands/tap-format.js';
import { type PeerAnswer, planTap } from '../../src/controlplane/tap/tap-plan.js';
import { tapTargets } from '../../src/controlplane/tap/tap-targets.js';
import type { RequestRecord } from '../../src/proxy/records.js';
import { parseTapFilter, tapMatches } from '../../src/telemetry/tap-filter.js';
import { TAP_QUEUE_LIMIT, TapHub } from '../../src/telemetry/tap-hub.js';
import { TapLimiter } from '../../src/telemetry/tap-limiter.js';
import { REDACTED, redactedHeaders, type TapRecord } from '../../src/telemetry/tap-record.js';

function record(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    direction: 'inbound',
    src_service: 'client',
    dst_service: 'web',
    src: '10.0.0.1:40000',
    src_identity: 'spiffe://weft.local/svc/client',
    route: 'default',
    method: 'GET',
    authority: 'web.mesh',
    path: '/api/items',
    protocol: 'HTTP/1.1',
    status: 200,
    request_bytes: 0,
    response_bytes: 12,
    close_reason: 'done',
    ...overrides,
  };
}

describe('parseTapFilter: every field checked, named when wrong', () => {
  it.each([
    [{ service: 'Web!' }, /tap service: "Web!" is not a service name/],
    [{ pathPrefix: 'api' }, /tap path: "api" must start with \//],
    [{ method: 'get it' }, /tap method: "get it" is not an HTTP method/],
    [{ status: '6xx' }, /tap status: "6xx" is neither a class/],
    [{ status: '20' }, /tap status/],
    [{ maxPerSecond: 5000 }, /tap rate: 5000 records\/s: give 1-1000/],
    [{ maxPerSecond: 1.5 }, /tap rate/],
  ])('%j is refused', (input, message) => {
    expect(() => parseTapFilter(input)).toThrow(message);
  });

  it('fills in defaults: everything matches, 100 records/s, no headers', () => {
    expect(parseTapFilter(null)).toEqual({
      status: { kind: 'any' },
      headers: false,
      maxPerSecond: 100,
    });
  });
});

describe('tapMatches', () => {
  it.each([
    // filter, record fields, matches
    [{}, {}, true],
    [{ service: 'web' }, {}, true],
    [{ service: 'db' }, {}, false],
    [{ service: 'client' }, {}, false], // the tapped service is the destination
    [{ pathPrefix: '/api/' }, {}, true],
    [{ pathPrefix: '/api/' }, { path: '/apix' }, false],
    [{ method: 'get' }, {}, true],
    [{ method: 'POST' }, {}, false],
    [{ status: '2xx' }, {}, true],
    [{ status: '5xx' }, {}, false],
    [{ status: '5xx' }, { status: 503 }, true],
    [{ status: '404' }, { status: 404 }, true],
    [{ status: '404' }, { status: 403 }, false],
    [{ status: '2xx' }, { status: 0 }, false],
    [{ source: 'client' }, {}, true],
    [{ source: 'spiffe://weft.local/svc/client' }, {}, true],
    [{ source: 'other' }, {}, false],
    [{ service: 'web', method: 'GET', status: '2xx', pathPrefix: '/api' }, {}, true],
  ])('%j on %j: %s', (filter, fields, expected) => {
    expect(tapMatches(parseTapFilter(filter), record(fields))).toBe(expected);
  });
});

describe('TapLimiter', () => {
  it('lets N a second through, refilled with the clock', () => {
    let now = 0;
    const limiter = new TapLimiter(5, () => now);
    const take = (n: number) => Array.from({ length: n }, () => limiter.take()).filter(Boolean);
    expect(take(20)).toHaveLength(5);
    now = 200; // a fifth of a second: one more
    expect(take(20)).toHaveLength(1);
    now = 10_000; // long idle: the bucket holds at most one second's worth
    expect(take(20)).toHaveLength(5);
  });
});

describe('redactedHeaders', () => {
  it('redacts credentials and configured names, keeps the rest, drops pseudo-headers', () => {
    const redact = new Set([
      'authorization',
      'cookie',
      'set-cookie',
      'proxy-authorization',
      'x-api-key',
    ]);
    expect(
      redactedHeaders(
        {
          ':path': '/x',
          Authorization: 'Bearer secret',
          cookie: 'session=1',
          'proxy-authorization': 'Basic x',
          'x-api-key': 'k',
          accept: ['a', 'b'],
          'user-agent': 'curl',
        },
        redact,
      ),
    ).toEqual({
      authorization: REDACTED,
      cookie: REDACTED,
      'proxy-authorization': REDACTED,
      'x-api-key': REDACTED,
      accept: 'a, b',
      'user-agent': 'curl',
    });
  });
});

describe('tapTargets', () => {
  const workloads = [
    { node: 'node2', service: 'web' },
    { node: 'node3', service: 'web' },
    { node: 'node3', service: 'db' },
  ];
  it.each([
    [{ node: 'node2' }, ['node1', 'node2'], { kind: 'nodes', nodes: ['node2'] }],
    [{ node: 'node9' }, ['node1'], { kind: 'none', reason: 'node_not_connected' }],
    [{ service: 'web' }, ['node1', 'node2', 'node3'], { kind: 'nodes', nodes: ['node2', 'node3'] }],
    [{ service: 'web' }, ['node1', 'node3'], { kind: 'nodes', nodes: ['node3'] }],
    [{ service: 'web' }, ['node1'], { kind: 'none', reason: 'node_not_connected' }],
    [{ service: 'cache' }, ['node1'], { kind: 'none', reason: 'no_workloads' }],
    [{}, ['node3', 'node1'], { kind: 'nodes', nodes: ['node1', 'node3'] }],
    [{}, [], { kind: 'none', reason: 'no_agents' }],
  ])('%j with %j connected: %j', (request, connected, expected) => {
    expect(tapTargets(request, connected, workloads)).toMatchObject(expected);
  });
});

describe("planTap: this replica's agents and its peers' answers", () => {
  const local = tapTargets({ node: 'node9' }, ['node1'], []);
  const started: PeerAnswer = { kind: 'started', replica: '10.0.0.2:15012' };
  const refused: PeerAnswer = { kind: 'refused', replica: '10.0.0.3:15012', message: 'none' };
  const down: PeerAnswer = { kind: 'unreachable', replica: '10.0.0.4:15012', message: 'refused' };
  it.each([
    ['own agents, no peers', tapTargets({}, ['node1'], []), [], { kind: 'open', nodes: ['node1'] }],
    [
      'only a peer has them',
      local,
      [refused, started],
      { kind: 'open', nodes: [], peers: [started.replica] },
    ],
    [
      'own agents, a peer down',
      tapTargets({}, ['node1'], []),
      [down],
      { kind: 'open', unreachable: [down] },
    ],
    ['nobody has them', local, [refused], { kind: 'refuse', reason: 'node_not_connected' }],
    [
      'nobody, one peer down',
      local,
      [refused, down],
      { kind: 'refuse', reason: 'node_not_connected' },
    ],
    [
      'no peers',
      local,
      [],
      {
        kind: 'refuse',
        reason: 'node_not_connected',
        message: local.kind === 'none' ? local.message : '',
      },
    ],
  ] as const)('%s', (_name, targets, answers, expected) => {
    expect(planTap(targets, answers)).toMatchObject(expected);
  });

  it('says which replicas were asked and which could not be', () => {
    const plan = planTap(local, [refused, down]);
    expect(plan.kind === 'refuse' && plan.message).toMatch(
      /node node9 has no sync stream .*; nor has the other replica; could not ask 10\.0\.0\.4:15012 \(refused\)$/,
    );
    const none = planTap(tapTargets({ service: 'cache' }, ['node1'], []), [refused]);
    expect(none).toMatchObject({ kind: 'refuse', reason: 'no_workloads' });
    expect(none.kind === 'refuse' && none.message).not.toMatch(/replica/);
  });
});

describe('TapHub', () => {
  const drained = () => new Promise((resolve) => setImmediate(resolve));
  const collect = () => {
    const got = { records: [] as TapRecord[], dropped: [] as number[] };
    return {
      got,
      subscriber: {
        records: (b: TapRecord[]) => got.records.push(...b),
        dropped: (n: number) => got.dropped.push(n),
      },
    };
  };

  it('is inactive with no tap, active while one is open', () => {
    const hub = new TapHub({ node: 'n1' });
    expect(hub.active).toBe(false);
    const tap = hub.open(parseTapFilter({}), collect().subscriber);
    expect(hub.active).toBe(true);
    tap.close();
    expect(hub.active).toBe(false);
  });

  it('copies matching records off the caller, headers only when asked, redacted', async () => {
    const hub = new TapHub({ node: 'n1', redactHeaders: ['X-Token'] });
    const plain = collect();
    const withHeaders = collect();
    hub.open(parseTapFilter({ pathPrefix: '/api/' }), plain.subscriber);
    hub.open(parseTapFilter({ headers: true }), withHeaders.subscriber);
    const r = record();
    const headers = { authorization: 'Bearer s', 'x-token': 't', accept: '*/*' };
    hub.offer(r, 1.5, headers);
    hub.offer(record({ path: '/other' }), 1, headers);
    // Nothing reaches a tap on the caller's turn: the drain runs after it.
    expect(plain.got.records).toHaveLength(0);
    r.path = '/api/items'; // the record is not changed after its finish; the copy is the tap's
    await drained();
    expect(plain.got.records.map((x) => x.path)).toEqual(['/api/items']);
    expect(plain.got.records[0]).toMatchObject({
      node: 'n1',
      method: 'GET',
      status: 200,
      duration_ms: 1.5,
      src_identity: 'spiffe://weft.local/svc/client',
    });
    expect(plain.got.records[0]!.headers).toBeUndefined();
    expect(withHeaders.got.records).toHaveLength(2);
    expect(withHeaders.got.records[0]!.headers).toEqual({
      authorization: REDACTED,
      'x-token': REDACTED,
      accept: '*/*',
    });
  });

  it('holds each tap to its rate and counts what it drops, reported at close', async () => {
    let now = 0;
    const hub = new TapHub({ node: 'n1', now: () => now });
    const c = collect();
    const tap = hub.open(parseTapFilter({ maxPerSecond: 10 }), c.subscriber);
    for (let i = 0; i < 100; i++) hub.offer(record(), 1);
    await drained();
    expect(c.got.records).toHaveLength(10);
    now = 1_000;
    for (let i = 0; i < 100; i++) hub.offer(record(), 1);
    await drained();
    expect(c.got.records).toHaveLength(20);
    tap.close();
    expect(c.got.dropped.at(-1)).toBe(180);
  });

  it('once every rate limit is spent, counts a finished request without queueing it', async () => {
    let now = 0;
    const hub = new TapHub({ node: 'n1', now: () => now });
    const c = collect();
    const tap = hub.open(parseTapFilter({ maxPerSecond: 2, method: 'GET' }), c.subscriber);
    for (let i = 0; i < 5; i++) hub.offer(record(), 1);
    await drained();
    expect(c.got.records).toHaveLength(2);
    for (let i = 0; i < 1000; i++) hub.offer(record(), 1);
    hub.offer(record({ method: 'POST' }), 1); // not the tap's: neither shown nor counted
    expect(hub.queued).toBe(0);
    now = 500; // one token again
    hub.offer(record(), 1);
    expect(hub.queued).toBe(1);
    await drained();
    expect(c.got.records).toHaveLength(3);
    tap.close();
    expect(c.got.dropped.at(-1)).toBe(3 + 1000);
  });

  it('drops past a full queue instead of holding requests, counted for every tap', async () => {
    const hub = new TapHub({ node: 'n1', now: () => 0 });
    const c = collect();
    const tap = hub.open(parseTapFilter({ maxPerSecond: 1000 }), c.subscriber);
    for (let i = 0; i < TAP_QUEUE_LIMIT + 50; i++) hub.offer(record(), 1);
    await drained();
    tap.close();
    expect(c.got.records).toHaveLength(1000);
    expect(c.got.dropped.at(-1)).toBe(TAP_QUEUE_LIMIT + 50 - 1000);
  });

  it('copies nothing for a tap closed before the drain', async () => {
    const hub = new TapHub({ node: 'n1' });
    const c = collect();
    const open = collect();
    const tap = hub.open(parseTapFilter({}), c.subscriber);
    hub.open(parseTapFilter({}), open.subscriber); // the sentinel: a tap still open sees it
    hub.offer(record(), 1);
    tap.close();
    await drained();
    expect(open.got.records).toHaveLength(1);
    expect(c.got.records).toHaveLength(0);
  });
});

describe('tapLine: the readable format', () => {
  const base: TapRecord = {
    time: '2026-11-28T16:00:01.234Z',
    node: 'node2',
    direction: 'inbound',
    method: 'GET',
    authority: 'web.mesh',
    path: '/api/items',
    protocol: 'HTTP/1.1',
    status: 200,
    duration_ms: 1.25,
    route: 'default',
    src: '10.0.0.1:40000',
    src_service: 'client',
    dst_service: 'web',
    endpoint: '10.0.0.3:8080',
    request_bytes: 0,
    response_bytes: 12,
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    close_reason: 'done',
  };
  it.each([
    [
      {},
      '16:00:01.234 node2 in  client -> web GET web.mesh/api/items 200 1.25ms 10.0.0.3:8080 trace=0af7651916cd43dd8448eb211c80319c',
    ],
    [
      { status: 0, close_reason: 'client_reset', direction: 'outbound', trace_id: undefined },
      '16:00:01.234 node2 out client -> web GET web.mesh/api/items - (client_reset) 1.25ms 10.0.0.3:8080',
    ],
    [
      { grpc_status: 14, endpoint: undefined, trace_id: undefined, headers: { accept: '*/*' } },
      '16:00:01.234 node2 in  client -> web GET web.mesh/api/items 200 grpc=14 1.25ms -\n    accept: */*',
    ],
  ] as const)('%j', (fields, line) => {
    expect(tapLine({ ...base, ...fields } as TapRecord)).toBe(line);
  });
});
