// Scoped join tokens against a real control plane on loopback (issue 10, deliverable 1): a
// token names the node that may use it; joining as a node that exists needs a token that says
// it replaces it; tokens are listed (never their secret) and revoked. The attack: a fresh token
// used as hostname n1 took over n1's name, moved its address and emptied its endpoints.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/api/csr.js';
import type { NodeInfo, TokenInfo } from '../../src/api/messages.js';
import { unary } from '../../src/api/proto.js';
import { nodeSpiffeId } from '../../src/api/spiffe.js';
import {
  adminClient,
  joinNode,
  LOG_LEVEL,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;
let n1: NodeCredentials;

beforeAll(async () => {
  cp = await startControlPlane();
  n1 = await joinNode(cp, 'n1', { services: ['echo'], addresses: ['10.0.0.1'] });
  const c = nodeClients(cp, n1);
  await unary(c.identity, c.identity.registerWorkloads, {
    workloads: [{ service: 'echo', port: 8080, health: 'healthy' }],
  });
  c.close();
});
afterAll(() => cp.stop({ removeDataDir: true }));

async function join(hostname: string, token: string, addresses: string[]) {
  const { csrPem } = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, hostname));
  const c = nodeClients(cp);
  try {
    return await unary(c.identity, c.identity.join, { token, hostname, csrPem, addresses });
  } finally {
    c.close();
  }
}

async function refusal(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const outcome = await call.then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  if (outcome === undefined) throw new Error('the call succeeded but should have been refused');
  return outcome;
}

async function admin<T>(fn: (a: ReturnType<typeof adminClient>) => Promise<T>): Promise<T> {
  const a = adminClient(cp);
  try {
    return await fn(a);
  } finally {
    a.close();
  }
}

const nodes = (): Promise<NodeInfo[]> =>
  admin(async (a) => (await unary(a, a.listNodes, {})).nodes);
const tokens = (): Promise<TokenInfo[]> =>
  admin(async (a) => (await unary(a, a.listTokens, {})).tokens);
const workloadNames = (): Promise<string[]> =>
  admin(async (a) =>
    (await unary(a, a.get, { kind: 'Workload', name: '' })).resources.map((r) => r.name),
  );

describe('hostname takeover', () => {
  it('refuses a token for n2 used as hostname n1, and keeps it usable by n2', async () => {
    const token = await cp.createToken({ node: 'n2' });
    const err = await refusal(join('n1', token, ['10.6.6.6']));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(
      `join token ${token.split('.')[0]} is for node n2, not n1: create one for this host with \`weft token create --node n1\``,
    );
    expect((await join('n2', token, ['10.0.0.2'])).spiffeId).toBe('spiffe://weft.local/node/n2');
  });

  it('refuses a fresh token for n1 while n1 exists, leaving its address and workloads alone', async () => {
    const token = await cp.createToken({ node: 'n1' });
    const err = await refusal(join('n1', token, ['10.6.6.6']));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toBe(
      'node n1 already exists (joined at 10.0.0.1): for a rebuilt host create a token with `weft token create --node n1 --replace`, or remove the node first with `weft delete node n1`',
    );
    const n1Info = (await nodes()).find((n) => n.name === 'n1');
    expect(n1Info?.addresses).toEqual(['10.0.0.1']);
    expect(await workloadNames()).toContain('n1-echo-8080');
    // n1's own certificate keeps working.
    const c = nodeClients(cp, n1);
    const res = await unary(c.identity, c.identity.registerWorkloads, {
      workloads: [{ service: 'echo', port: 8080, health: 'healthy' }],
    });
    c.close();
    expect(res.names).toEqual(['n1-echo-8080']);
    // The refused token was not consumed.
    expect((await tokens()).find((t) => token.startsWith(`${t.id}.`))?.state).toBe('unused');
  });

  it('accepts a --replace token for n1, moves its address, and logs a warning with both addresses', async () => {
    const token = await cp.createToken({ node: 'n1', replace: true });
    await join('n1', token, ['10.0.0.9']);
    expect((await nodes()).find((n) => n.name === 'n1')?.addresses).toEqual(['10.0.0.9']);
    const warn = cp.logs.find((l) => l.msg === 'node replaced by a re-join');
    expect(warn).toMatchObject({
      level: LOG_LEVEL.warn,
      node: 'n1',
      oldAddresses: ['10.0.0.1'],
      addresses: ['10.0.0.9'],
    });
    // A first join is an ordinary event.
    const joined = cp.logs.find((l) => l.msg === 'node joined' && l.node === 'n2');
    expect(joined?.level).toBe(LOG_LEVEL.info);
  });
});

describe('token list and revoke', () => {
  it('lists tokens with node, services and state, never the secret', async () => {
    const token = await cp.createToken({ node: 'n3', services: ['web', 'orders'], ttl: '1h' });
    const [id, secret] = token.split('.') as [string, string];
    const list = await tokens();
    const mine = list.find((t) => t.id === id);
    expect(mine).toMatchObject({
      id,
      node: 'n3',
      services: ['orders', 'web'],
      replace: false,
      state: 'unused',
    });
    expect(JSON.stringify(list)).not.toContain(secret);
    const used = list.find((t) => t.node === 'n2');
    expect(used).toMatchObject({ state: 'used', usedBy: 'n2' });
    expect(used?.usedAtUnixMs).toBeGreaterThan(0);
  });

  it('a revoked token cannot join', async () => {
    const token = await cp.createToken({ node: 'n4' });
    const id = token.split('.')[0]!;
    const res = await admin((a) => unary(a, a.revokeToken, { id }));
    expect(res.token).toMatchObject({ id, state: 'revoked' });
    const err = await refusal(join('n4', token, ['10.0.0.4']));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toMatch(
      new RegExp(
        `^join token ${id} was revoked at \\S+; create a new one with \`weft token create --node n4\`$`,
      ),
    );
    expect((await nodes()).map((n) => n.name)).not.toContain('n4');
  });

  it('refuses to revoke an unknown token, and a used one', async () => {
    const unknown = await refusal(admin((a) => unary(a, a.revokeToken, { id: '0123456789ab' })));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe('join token 0123456789ab not found (see weft token list)');
    const used = (await tokens()).find((t) => t.state === 'used')!;
    const err = await refusal(admin((a) => unary(a, a.revokeToken, { id: used.id })));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toBe(
      `join token ${used.id} was already used by ${used.usedBy}: to take that node out of the mesh use \`weft delete node ${used.usedBy}\``,
    );
  });

  it('refuses to create a token without a node', async () => {
    const err = await refusal(
      admin((a) => unary(a, a.createToken, { ttlSeconds: 60, description: 'x' } as never)),
    );
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe(
      'a join token names the node that may use it: give node (`weft token create --node NAME`)',
    );
  });
});
