// Where a starting control plane takes its CA from, for every combination of what it finds:
// its store, a KEK, a CA of its own, what the store records, and a CA key sealed in etcd.
import { describe, expect, it } from 'vitest';
import { type CaFacts, type CaPlan, planCa } from '../../src/controlplane/ca/ca-plan.js';

const generated = (pin: string) => ({ pin, source: 'generated' as const });

const cases: Array<[string, CaFacts, CaPlan]> = [
  // The file store: as before KEKs existed.
  ['file store, first start', { store: 'file', kek: false }, { kind: 'create-local' }],
  [
    'file store, its CA in the data directory',
    { store: 'file', kek: false, localPin: 'p1', record: generated('p1') },
    { kind: 'use-local' },
  ],
  [
    'file store, a CA changed on purpose (logged)',
    { store: 'file', kek: false, localPin: 'p2', record: generated('p1') },
    { kind: 'use-local' },
  ],
  [
    'file store, its created CA lost',
    { store: 'file', kek: false, record: generated('p1') },
    { kind: 'refuse', reason: 'ca-missing' },
  ],
  // etcd with a KEK.
  ['etcd + KEK, empty etcd', { store: 'etcd', kek: true }, { kind: 'create-sealed' }],
  [
    'etcd + KEK, empty etcd, a CA imported (`ca:` files)',
    { store: 'etcd', kek: true, localPin: 'p1' },
    { kind: 'seal-local' },
  ],
  [
    'etcd + KEK, the sealed key there',
    { store: 'etcd', kek: true, record: generated('p1'), sealedPin: 'p1' },
    { kind: 'open-sealed' },
  ],
  [
    'etcd + KEK, the sealed key there and the same CA here',
    { store: 'etcd', kek: true, localPin: 'p1', record: generated('p1'), sealedPin: 'p1' },
    { kind: 'open-sealed' },
  ],
  [
    'etcd + KEK, the sealed key there and another CA here',
    { store: 'etcd', kek: true, localPin: 'p2', record: generated('p1'), sealedPin: 'p1' },
    { kind: 'refuse', reason: 'other-ca' },
  ],
  [
    'etcd + KEK, a CA shared as files, this replica has it: sealed now',
    { store: 'etcd', kek: true, localPin: 'p1', record: generated('p1') },
    { kind: 'seal-local' },
  ],
  [
    'etcd + KEK, a CA shared as files, this replica has another',
    { store: 'etcd', kek: true, localPin: 'p2', record: generated('p1') },
    { kind: 'refuse', reason: 'other-ca' },
  ],
  [
    'etcd + KEK, a CA shared as files, this replica has none',
    { store: 'etcd', kek: true, record: generated('p1') },
    { kind: 'refuse', reason: 'no-sealed-key' },
  ],
  // etcd without a KEK.
  [
    'etcd without KEK, the key sealed there',
    { store: 'etcd', kek: false, record: generated('p1'), sealedPin: 'p1' },
    { kind: 'refuse', reason: 'kek-needed' },
  ],
  [
    'etcd without KEK, the key sealed there, the CA files here',
    { store: 'etcd', kek: false, localPin: 'p1', record: generated('p1'), sealedPin: 'p1' },
    { kind: 'refuse', reason: 'kek-needed' },
  ],
  ['etcd without KEK, empty etcd', { store: 'etcd', kek: false }, { kind: 'create-local' }],
  [
    'etcd without KEK, the CA copied here',
    { store: 'etcd', kek: false, localPin: 'p1', record: generated('p1') },
    { kind: 'use-local' },
  ],
  [
    'etcd without KEK, no CA here',
    { store: 'etcd', kek: false, record: generated('p1') },
    { kind: 'refuse', reason: 'ca-not-here' },
  ],
  [
    'etcd without KEK, another CA here',
    { store: 'etcd', kek: false, localPin: 'p2', record: generated('p1') },
    { kind: 'refuse', reason: 'other-ca' },
  ],
];

describe('planCa', () => {
  for (const [what, facts, plan] of cases) it(what, () => expect(planCa(facts)).toEqual(plan));
});
