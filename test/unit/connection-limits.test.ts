// The limits against hostile clients, table-driven: the descriptor limit as /proc reports it,
// the limits each listener gets from it or from agent.yaml (and the ones refused, naming the
// field), the admission decision, and the refusal log's one line per interval.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { isWeftError } from '../../src/errors.js';
import { admission, ConnectionGate, sourceKey } from '../../src/proxy/limits/connection-gate.js';
import { parseFdLimit } from '../../src/proxy/limits/fd-limit.js';
import { type LimitsConfig, resolveLimits } from '../../src/proxy/limits/limits-config.js';
import { limitsConfigSchema } from '../../src/proxy/limits/limits-schema.js';
import { RefusalLog } from '../../src/proxy/limits/refusal-log.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('the descriptor limit', () => {
  it.each([
    [LIMITS, { soft: 1024, hard: 524288 }],
    [
      'Max open files            unlimited            unlimited            files\n',
      { soft: Number.POSITIVE_INFINITY, hard: Number.POSITIVE_INFINITY },
    ],
  ])('is read from /proc/self/limits', (text, limit) => {
    expect(parseFdLimit(text)).toEqual(limit);
  });

  it('a text without the row is an internal error', () => {
    expect(() => parseFdLimit('Max cpu time unlimited unlimited seconds\n')).toThrow(
      /no "Max open files" row/,
    );
  });
});

const defaults = (): LimitsConfig => limitsConfigSchema.parse({});
const fd = (soft: number) => ({ soft, hard: soft });

describe('limits resolved from the descriptor limit', () => {
  it.each([
    // limit, reserved, outbound, inbound (total, per source), tunnel (total, per source)
    [1024, 64, [192, 192], [96, 32], [96, 32]],
    [20_000, 1024, [3795, 3795], [1897, 237], [1897, 237]],
    [1_048_576, 1024, [209510, 209510], [104755, 13094], [104755, 13094]],
  ])('RLIMIT_NOFILE %i', (limit, reserved, outbound, inbound, tunnel) => {
    const r = resolveLimits(defaults(), fd(limit));
    expect(r.fds).toEqual({ limit, reserved });
    expect([r.outbound.maxConnections, r.outbound.maxConnectionsPerSource]).toEqual(outbound);
    expect([r.inbound.maxConnections, r.inbound.maxConnectionsPerSource]).toEqual(inbound);
    expect([r.tunnel.maxConnections, r.tunnel.maxConnectionsPerSource]).toEqual(tunnel);
    // The three listeners together never need more descriptors than the budget.
    const needed = 2 * outbound[0]! + 2 * inbound[0]! + 4 * tunnel[0]!;
    expect(needed).toBeLessThanOrEqual(limit - reserved);
  });

  it('an unlimited RLIMIT_NOFILE is the kernel cap', () => {
    expect(resolveLimits(defaults(), fd(Number.POSITIVE_INFINITY)).fds.limit).toBe(1_048_576);
  });

  it('takes configured values, and the timeouts as given', () => {
    const config = limitsConfigSchema.parse({
      inbound: { maxConnections: 100, maxConnectionsPerSource: 5, silentTimeoutMs: 1_000 },
      tunnel: { handshakeTimeoutMs: 2_000, idleTimeoutMs: 60_000 },
      outbound: { idleTimeoutMs: 120_000 },
      refusalLogIntervalMs: 5_000,
    });
    const r = resolveLimits(config, fd(1024));
    expect(r.inbound).toEqual({
      maxConnections: 100,
      maxConnectionsPerSource: 5,
      idleTimeoutMs: 3_600_000,
      silentTimeoutMs: 1_000,
    });
    expect(r.tunnel).toMatchObject({ handshakeTimeoutMs: 2_000, idleTimeoutMs: 60_000 });
    expect(r.outbound.idleTimeoutMs).toBe(120_000);
    expect(r.refusalLogIntervalMs).toBe(5_000);
    // The others share what the configured one leaves: 960 - 200 descriptors.
    expect(r.outbound.maxConnections).toBe(190);
    expect(r.tunnel.maxConnections).toBe(95);
    // A configured total with no per-source value gets the derived share of it.
    const onlyTotal = resolveLimits(
      limitsConfigSchema.parse({ tunnel: { maxConnections: 16 } }),
      fd(1024),
    );
    expect(onlyTotal.tunnel.maxConnectionsPerSource).toBe(16);
  });

  it.each([
    [
      { inbound: { maxConnections: 1000 } },
      1024,
      /agent config: limits\.inbound\.maxConnections \(1000\) with the other listeners need 2000 file descriptors \(outbound 2, inbound 2, tunnel 4 per connection\), but the agent may open 1024 \(RLIMIT_NOFILE\) and keeps 64 for itself: lower the limits or raise LimitNOFILE=/,
    ],
    [
      {
        outbound: { maxConnections: 200 },
        inbound: { maxConnections: 100 },
        tunnel: { maxConnections: 100 },
      },
      1024,
      /limits\.outbound\.maxConnections \(200\) and limits\.inbound\.maxConnections \(100\) and limits\.tunnel\.maxConnections \(100\) need 1000 file descriptors/,
    ],
    [{}, 100, /may open only 100 file descriptors \(RLIMIT_NOFILE\), too few/],
    [
      { outbound: { maxConnectionsPerSource: 500 } },
      1024,
      /limits\.outbound\.maxConnectionsPerSource \(500\) must not exceed limits\.outbound\.maxConnections \(192\)/,
    ],
  ])('refuses %j with RLIMIT_NOFILE %i', (config, limit, message) => {
    const err = (() => {
      try {
        resolveLimits(limitsConfigSchema.parse(config), fd(limit));
      } catch (e) {
        return e;
      }
    })();
    expect(isWeftError(err, 'WEFT_E_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(message);
  });
});

describe('agent.yaml limits', () => {
  it.each([
    [
      'limits: { inbound: { maxConnections: 10, maxConnectionsPerSource: 20 } }',
      'agent.yaml: limits.inbound.maxConnectionsPerSource: must not exceed maxConnections (10)',
    ],
    ['limits: { tunnel: { maxConnections: 0 } }', 'agent.yaml: limits.tunnel.maxConnections: '],
    ['limits: { inbound: { idleTimeoutMs: 1.5 } }', 'agent.yaml: limits.inbound.idleTimeoutMs: '],
    ['limits: { outbound: { silentTimeoutMs: 5 } }', 'agent.yaml: limits.outbound: '],
    ['limits: { perSource: 5 }', 'agent.yaml: limits: '],
  ])('%s is refused', (yaml, message) => {
    expect(() => parseAgentConfig(yaml, 'agent.yaml')).toThrow(message);
  });

  it('every field is optional', () => {
    expect(parseAgentConfig('{}', 'agent.yaml').limits).toEqual({
      outbound: { idleTimeoutMs: 3_600_000 },
      inbound: { idleTimeoutMs: 3_600_000, silentTimeoutMs: 60_000 },
      tunnel: { handshakeTimeoutMs: 10_000, idleTimeoutMs: 600_000 },
      refusalLogIntervalMs: 10_000,
    });
  });
});

describe('admission', () => {
  const limits = { maxConnections: 4, maxConnectionsPerSource: 2 };
  it.each([
    [{ total: 0, fromSource: 0 }, 'admit'],
    [{ total: 3, fromSource: 1 }, 'admit'],
    [{ total: 3, fromSource: 2 }, 'per_source_limit'],
    [{ total: 4, fromSource: 0 }, 'total_limit'],
    [{ total: 4, fromSource: 2 }, 'total_limit'],
  ])('%j -> %s', (open, decision) => {
    expect(admission(limits, open)).toBe(decision);
  });

  it('a gate counts per source, and a release gives back one slot, once', () => {
    const gate = new ConnectionGate(limits);
    const a1 = gate.admit('10.0.0.1');
    const a2 = gate.admit('10.0.0.1');
    expect(gate.admit('10.0.0.1')).toEqual({ admitted: false, reason: 'per_source_limit' });
    const b1 = gate.admit('10.0.0.2');
    gate.admit('10.0.0.2');
    expect(gate.admit('10.0.0.3')).toEqual({ admitted: false, reason: 'total_limit' });
    expect(a1.admitted && a2.admitted && b1.admitted).toBe(true);
    if (a1.admitted) {
      a1.release();
      a1.release();
    }
    expect(gate.open).toBe(3);
    expect(gate.openFrom('10.0.0.1')).toBe(1);
    expect(gate.admit('10.0.0.1').admitted).toBe(true);
    expect(gate.admit('10.0.0.3')).toEqual({ admitted: false, reason: 'total_limit' });
  });

  it.each([
    ['10.0.0.9', '10.0.0.9'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:DB8:1:2::99', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:0db8:0000:0002:ffff::1', '2001:db8:0:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::10.0.0.9', '64:ff9b:0:0::/64'],
  ])('source %s counts as %s', (address, key) => {
    expect(sourceKey(address)).toBe(key);
  });

  it('counts the addresses of one IPv6 /64 as one source', () => {
    const gate = new ConnectionGate({ maxConnections: 10, maxConnectionsPerSource: 2 });
    expect(gate.admit('2001:db8:1:2::1').admitted).toBe(true);
    expect(gate.admit('2001:db8:1:2::2').admitted).toBe(true);
    expect(gate.admit('2001:db8:1:2::3')).toEqual({ admitted: false, reason: 'per_source_limit' });
    expect(gate.admit('2001:db8:1:3::1').admitted).toBe(true);
  });

  it('refuses limits that are not positive integers, naming the field', () => {
    expect(
      () => new ConnectionGate({ maxConnections: 0, maxConnectionsPerSource: 1 }, 'x'),
    ).toThrow('x: maxConnections must be a positive integer, got 0');
  });
});

describe('refusal log', () => {
  function harness(intervalMs = 10_000) {
    let now = 1_000_000;
    const timers: Array<{ at: number; fn: () => void }> = [];
    const lines: Array<Record<string, unknown>> = [];
    const log = pino(
      { level: 'warn', base: undefined, timestamp: false },
      { write: (s: string) => lines.push(JSON.parse(s)) },
    );
    const refusals = new RefusalLog(log, intervalMs, {
      now: () => now,
      setTimeout: (fn, ms) => {
        timers.push({ at: now + ms, fn });
        return {};
      },
    });
    const advance = (ms: number) => {
      now += ms;
      for (const t of timers.splice(0).sort((a, b) => a.at - b.at)) {
        if (t.at <= now) t.fn();
        else timers.push(t);
      }
    };
    return { refusals, lines, advance };
  }

  it('a burst costs one line at once and one summary per interval, with the count', () => {
    const { refusals, lines, advance } = harness();
    for (let i = 0; i < 2000; i++) refusals.note('inbound', 'per_source_limit', '10.0.0.9');
    refusals.note('inbound', 'per_source_limit', '10.0.0.8');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      listener: 'inbound',
      reason: 'per_source_limit',
      src: '10.0.0.9',
      msg: 'refused a inbound connection from 10.0.0.9: per_source_limit',
    });
    advance(9_999);
    expect(lines).toHaveLength(1);
    advance(1);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      refused: 2000,
      interval_s: 10,
      top_sources: { '10.0.0.9': 1999, '10.0.0.8': 1 },
      msg: 'refused 2000 inbound connections (per_source_limit) in the last 10 s, most from 10.0.0.9 (1999), 10.0.0.8 (1)',
    });
    // Still refusing: one summary per interval, never one line each.
    for (let i = 0; i < 500; i++) refusals.note('inbound', 'per_source_limit', '10.0.0.9');
    advance(10_000);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ refused: 500 });
    // Quiet for an interval: the next refusal is logged at once again.
    advance(10_000);
    expect(lines).toHaveLength(3);
    refusals.note('inbound', 'per_source_limit', '10.0.0.7');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ src: '10.0.0.7' });
  });

  it('keeps each listener and reason apart', () => {
    const { refusals, lines } = harness();
    refusals.note('inbound', 'per_source_limit', '10.0.0.9');
    refusals.note('tunnel', 'per_source_limit', '10.0.0.9');
    refusals.note('tunnel', 'handshake_timeout', '10.0.0.9', 'ERR_TLS_HANDSHAKE_TIMEOUT');
    expect(lines.map((l) => `${l.listener} ${l.reason}`)).toEqual([
      'inbound per_source_limit',
      'tunnel per_source_limit',
      'tunnel handshake_timeout',
    ]);
    expect(lines[2]).toMatchObject({ detail: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
  });
});
