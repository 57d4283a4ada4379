// Where the agent's connection to a local application comes from: the caller's address (the
// application sees who called) or the agent's own, and why; what a failed transparent connect
// means; and whether the host can carry it at all (capability, reply routing).
import { describe, expect, it } from 'vitest';
import {
  afterTransparentFailure,
  chooseSource,
  type SourceInput,
} from '../../src/proxy/endpoint/client-source.js';
import {
  effectiveCapabilities,
  type ReplyPathFacts,
  replyPathProblem,
} from '../../src/proxy/endpoint/reply-path-check.js';

const HOST = new Set(['10.77.0.3', 'fd00:77::3', '127.0.0.1', '::1']);
const base: SourceInput = {
  enabled: true,
  available: true,
  ipv6: true,
  client: { address: '10.77.0.2', port: 40312 },
  target: { address: '10.77.0.3', port: 8080 },
  isLocalAddress: (a) => HOST.has(a),
};

describe('chooseSource', () => {
  it("connects from the caller's address, never reusing its port", () => {
    expect(chooseSource(base)).toEqual({ kind: 'client', address: '10.77.0.2', avoidPort: 40312 });
  });

  it('does the same for IPv6', () => {
    const v6 = {
      ...base,
      client: { address: 'fd00:77::2', port: 5 },
      target: { address: 'fd00:77::3', port: 8080 },
    };
    expect(chooseSource(v6)).toEqual({ kind: 'client', address: 'fd00:77::2', avoidPort: 5 });
  });

  it.each<[string, Partial<SourceInput>, string]>([
    ['preserving is off in the config', { enabled: false }, 'disabled'],
    ['preserving was turned off on this host', { available: false }, 'unavailable'],
    ['the peer did not name its client', { client: undefined }, 'no_client'],
    ['the caller is loopback', { client: { address: '127.0.0.1', port: 1 } }, 'loopback'],
    [
      'the application listens on loopback',
      { target: { address: '127.0.0.1', port: 8080 } },
      'loopback',
    ],
    ['the caller is this host', { client: { address: '10.77.0.3', port: 1 } }, 'same_host'],
    [
      'the caller is IPv6, the application IPv4',
      { client: { address: 'fd00:77::2', port: 1 } },
      'family',
    ],
    [
      'IPv6 capture is off',
      {
        ipv6: false,
        client: { address: 'fd00:77::2', port: 1 },
        target: { address: 'fd00:77::3', port: 8080 },
      },
      'ipv6_off',
    ],
    ['a link-local IPv4 caller', { client: { address: '169.254.1.1', port: 1 } }, 'link_local'],
    [
      'a link-local IPv6 caller',
      { client: { address: 'fe80::2', port: 1 }, target: { address: 'fd00:77::3', port: 1 } },
      'link_local',
    ],
  ])("connects from the agent's address when %s", (_, change, reason) => {
    expect(chooseSource({ ...base, ...change })).toEqual({ kind: 'agent', reason });
  });
});

describe('afterTransparentFailure', () => {
  it.each([
    ['ECONNREFUSED', { retry: false }],
    ['ABORT_ERR', { retry: false }],
    ['EPERM', { retry: true, disable: true, disableIfRetryWorks: false }],
    ['EACCES', { retry: true, disable: true, disableIfRetryWorks: false }],
    ['ETIMEDOUT', { retry: true, disable: false, disableIfRetryWorks: true }],
    ['EADDRINUSE', { retry: true, disable: false, disableIfRetryWorks: false }],
    ['EADDRNOTAVAIL', { retry: true, disable: false, disableIfRetryWorks: false }],
    [undefined, { retry: true, disable: false, disableIfRetryWorks: false }],
  ])('%s -> %o', (code, outcome) => {
    expect(afterTransparentFailure(code)).toEqual(outcome);
  });
});

describe('replyPathProblem', () => {
  const facts: ReplyPathFacts = {
    capEff: 1n << 12n,
    routing: { family: 'ipv4', rule: true, otherRule: false, route: true },
    describe: { rule: 'IPv4: ip rule ...', route: 'IPv4: ip route ...' },
  };

  it('is none with CAP_NET_ADMIN and the rule and route in place', () => {
    expect(replyPathProblem(facts)).toBeUndefined();
  });

  it('names the missing capability', () => {
    expect(replyPathProblem({ ...facts, capEff: 0n })).toMatch(/lacks CAP_NET_ADMIN/);
  });

  it('says what to run when the rule or the route is missing', () => {
    const noRule = { ...facts, routing: { ...facts.routing, rule: false } } as ReplyPathFacts;
    expect(replyPathProblem(noRule)).toBe(
      'the reply routing is not installed (IPv4: ip rule ...): run `weft redirect install` with this config',
    );
    const neither = {
      ...facts,
      routing: { family: 'ipv4', rule: false, otherRule: true, route: false },
    } as ReplyPathFacts;
    expect(replyPathProblem(neither)).toMatch(/\(IPv4: ip rule \.\.\.; IPv4: ip route \.\.\.\)/);
  });

  it('reports routing it could not read', () => {
    expect(replyPathProblem({ ...facts, routing: { error: 'ip: not found' } })).toBe(
      'the reply routing could not be read: ip: not found',
    );
  });

  it('reads CapEff from /proc/self/status', () => {
    expect(effectiveCapabilities('Name:\tnode\nCapEff:\t0000000000001000\n')).toBe(0x1000n);
    expect(effectiveCapabilities('Name:\tnode\n')).toBeUndefined();
  });
});
