// The agent's choice of control plane replica: the replicas the config names (a list, or a DNS
// name with several addresses), each agent's own order (a fleet spreads), where it goes after
// a connection ends and whether it waits first; and agent.yaml's controlPlane.address(es).
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { REPLICA_STOPPING } from '../../src/api/grpc-errors.js';
import {
  expandCandidates,
  resolveCandidates,
} from '../../src/controlplane-client/replica-candidates.js';
import {
  chooseReplica,
  orderReplicas,
  type ReplicaCandidate,
  replicaOutcome,
} from '../../src/controlplane-client/replica-choice.js';

const c = (dial: string, name = dial): ReplicaCandidate => ({ dial, name });
const three = [c('10.0.0.1:15012'), c('10.0.0.2:15012'), c('10.0.0.3:15012')];

describe('controlPlane.address and controlPlane.addresses in agent.yaml', () => {
  const parse = (cp: string) => parseAgentConfig(`controlPlane:\n${cp}`, 'agent.yaml');
  it.each([
    ['  address: cp.example:15012', ['cp.example:15012']],
    ['  address: 10.0.0.1', ['10.0.0.1']],
    ['  addresses: [10.0.0.1:15012, "[fd00::2]:15012"]', ['10.0.0.1:15012', '[fd00::2]:15012']],
  ])('%s gives the replicas %j', (yaml, replicas) => {
    expect(parse(yaml).controlPlane?.addresses).toEqual(replicas);
  });

  it.each([
    [
      '  address: a:1\n  addresses: [b:2]',
      'agent.yaml: controlPlane.addresses: give address (one host:port) or addresses (a list), not both',
    ],
    ['  token: abc', 'agent.yaml: controlPlane.address: required'],
    ['  addresses: []', 'agent.yaml: controlPlane.addresses: list at least one host:port'],
    ['  addresses: ["cp:99999"]', '"cp:99999" is not host:port'],
    [
      '  address: "fd00::1:15012"',
      '"fd00::1:15012" is not host:port (an IPv6 address goes in brackets',
    ],
  ])('refuses %j naming the field', (yaml, message) => {
    expect(() => parse(yaml)).toThrow(message);
  });
});

describe('resolving the replicas at each (re)connect', () => {
  it('expands a DNS name to each of its addresses, keeps IPs, and keeps a name that did not resolve', () => {
    const resolved = new Map([['cp.mesh', ['10.0.0.1', 'fd00::2']]]);
    expect(expandCandidates(['cp.mesh:15012', '10.0.0.9:7', 'gone.mesh'], resolved)).toEqual([
      c('10.0.0.1:15012', 'cp.mesh:15012'),
      c('[fd00::2]:15012', 'cp.mesh:15012'),
      c('10.0.0.9:7'),
      c('gone.mesh'),
    ]);
  });

  it('asks the resolver each time, so replicas added behind a name are found', async () => {
    const answers = [['10.0.0.1'], ['10.0.0.1', '10.0.0.2']];
    const resolve = async () => answers.shift() ?? [];
    expect(await resolveCandidates(['cp.mesh:15012'], resolve)).toHaveLength(1);
    expect((await resolveCandidates(['cp.mesh:15012'], resolve)).map((x) => x.dial)).toEqual([
      '10.0.0.1:15012',
      '10.0.0.2:15012',
    ]);
  });

  it('keeps a name whose lookup fails, so the dial reports why', async () => {
    const resolve = async (): Promise<string[]> => {
      throw new Error('ENOTFOUND');
    };
    expect(await resolveCandidates(['cp.mesh:15012'], resolve)).toEqual([c('cp.mesh:15012')]);
  });
});

describe('each agent orders the replicas its own way', () => {
  it('is the same order whatever order the replicas come in', () => {
    const order = orderReplicas(three, 'node-1').map((x) => x.dial);
    expect(orderReplicas([...three].reverse(), 'node-1').map((x) => x.dial)).toEqual(order);
  });

  it('spreads a fleet: every replica is first for about a third of 300 agents', () => {
    const first = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const dial = orderReplicas(three, `node-${i}`)[0]!.dial;
      first.set(dial, (first.get(dial) ?? 0) + 1);
    }
    expect([...first.keys()].sort()).toEqual(three.map((x) => x.dial));
    for (const n of first.values()) expect(n).toBeGreaterThan(60);
  });

  it('lists a replica named twice once', () => {
    expect(orderReplicas([...three, three[0]!], 'n')).toHaveLength(3);
  });
});

describe('the next replica after a connection ends', () => {
  const [a, b, cc] = three;
  it.each([
    ['the start: the first, at once', undefined, undefined, a, 'none'],
    ['a replica stopping: the next, at once', a, 'stopping', b, 'none'],
    ['a failure: the next, after the backoff', b, 'failed', cc, 'backoff'],
    ['a failure of the last: wraps to the first', cc, 'failed', a, 'backoff'],
    ['a resync: the same replica', b, 'resync', b, 'backoff'],
    ['a last replica no longer listed: the first', c('10.9.9.9:1'), 'failed', a, 'backoff'],
  ] as const)('%s', (_, last, outcome, replica, wait) => {
    expect(chooseReplica(three, last?.dial, outcome)).toEqual({ replica, wait });
  });

  it('has nothing to choose from an empty list', () => {
    expect(chooseReplica([], undefined, undefined)).toBeUndefined();
  });

  it.each([
    ['the replica said it is stopping', {}, REPLICA_STOPPING, 'stopping'],
    ['the agent resynchronises', { resync: 'base mismatch' }, undefined, 'resync'],
    ['the stream failed', {}, undefined, 'failed'],
    ['another refusal', {}, 'certificate_revoked', 'failed'],
  ] as const)('%s: %s', (_, end, reason, outcome) => {
    expect(replicaOutcome(end, reason, REPLICA_STOPPING)).toBe(outcome);
  });
});
