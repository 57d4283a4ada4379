// When a used join token's earlier answer is given again: only to the very request that used
// it (same host, same CSR), and only while the node is still the one that join made.
import { describe, expect, it } from 'vitest';
import type { NodeRecord } from '../../src/controlplane/identity/node-record.js';
import {
  csrDigest,
  earlierRedemption,
  type Redemption,
} from '../../src/controlplane/identity/redemption.js';
import type { TokenRecord } from '../../src/controlplane/identity/tokens.js';

const digest = csrDigest(
  '-----BEGIN CERTIFICATE REQUEST-----\nAAA\n-----END CERTIFICATE REQUEST-----\n',
);
const used: TokenRecord = {
  id: 'abcdef012345',
  secretHash: 'x',
  description: '',
  createdAtMs: 1,
  expiresAtMs: 10_000,
  node: 'n1',
  usedAtMs: 500,
  usedBy: 'n1',
  usedFor: digest,
  usedCertificatePem: 'CERT',
};
const node: NodeRecord = {
  name: 'n1',
  spiffeId: 'spiffe://weft.local/node/n1',
  addresses: [],
  zone: '',
  joinedAtMs: 500,
  tokenId: 'abcdef012345',
  certNotAfterMs: 0,
};
const again: Redemption = { outcome: 'answer-again', certificatePem: 'CERT' };
const none: Redemption = { outcome: 'none' };

const cases: Array<[string, TokenRecord, string, string, NodeRecord | undefined, Redemption]> = [
  ['the same request', used, 'n1', digest, node, again],
  [
    'the same request, with the PEM spaced differently',
    used,
    'n1',
    csrDigest(
      `\n${'-----BEGIN CERTIFICATE REQUEST-----\nAAA\n-----END CERTIFICATE REQUEST-----'}\n\n`,
    ),
    node,
    again,
  ],
  ['another CSR', used, 'n1', csrDigest('other'), node, none],
  ['another host', used, 'n2', digest, node, none],
  ['an unused token', { ...used, usedAtMs: undefined }, 'n1', digest, node, none],
  [
    'a token used before redemption records',
    { ...used, usedFor: undefined, usedCertificatePem: undefined },
    'n1',
    digest,
    node,
    none,
  ],
  ['the node removed since', used, 'n1', digest, undefined, none],
  [
    'the node joined again since (another token)',
    used,
    'n1',
    digest,
    { ...node, tokenId: 'ffffffffffff' },
    none,
  ],
  ['a node record from another join', used, 'n1', digest, { ...node, joinedAtMs: 900 }, none],
];

describe('earlierRedemption', () => {
  for (const [what, token, host, d, n, outcome] of cases)
    it(what, () => expect(earlierRedemption(token, host, d, n)).toEqual(outcome));
});
