// A join whose etcd transaction committed but whose reply was lost. etcd3 1.1.2 retries every
// unary call, Txn included, up to 3 times on UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, ...
// (connection-pool.js: the global cockatiel retry policy), so a Txn whose reply was lost is
// sent again; its compares then fail against its own first commit. Here that double execution
// is injected on the replica's real store, against a real etcd (started by this file): the
// join must still succeed (the token was redeemed by this very request), and the token must
// stay refused to any other request.
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { createKeyAndCsr } from '../../src/api/csr.js';
import { unary } from '../../src/api/proto.js';
import { nodeSpiffeId } from '../../src/api/spiffe.js';
import type { TxnRequest, TxnResult } from '../../src/controlplane/store/store.js';
import { startControlPlaneSession } from '../../src/controlplane-client/session.js';
import { WeftError } from '../../src/errors.js';
import {
  joinNode,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let cp: TestControlPlane;
let dir: string;
/** Set to make the next join transaction run twice, as etcd3 does when its reply is lost. */
let replayNextJoin = false;
let replayed = 0;
/** Set to make the next join transaction commit and then fail, as when etcd3 gives up. */
let loseNextJoin = false;

const isJoin = (req: TxnRequest) =>
  req.ops.some((op) => op.key.startsWith('/tokens/')) &&
  req.ops.some((op) => op.key.startsWith('/nodes/'));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-join-retry-'));
  const caKekFile = join(dir, 'kek');
  writeFileSync(caKekFile, randomBytes(32), { mode: 0o600 });
  etcd = await startEtcd();
  cp = await startControlPlane({
    config: {
      store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: `/weft-join-${process.pid}/` },
      caKekFile,
    },
  });
  const store = cp.controlPlane.store;
  const txn = store.txn.bind(store);
  store.txn = async (req: TxnRequest): Promise<TxnResult> => {
    if (loseNextJoin && isJoin(req)) {
      loseNextJoin = false;
      await txn(req);
      throw new WeftError('WEFT_E_STORE', 'etcd failed to commit a transaction: reply lost');
    }
    if (!(replayNextJoin && isJoin(req))) return txn(req);
    replayNextJoin = false;
    replayed++;
    await txn(req); // committed; its reply "lost"
    return txn(req); // the retry: what the caller sees
  };
}, 120_000);

afterAll(async () => {
  await cp?.stop({ removeDataDir: true });
  await etcd?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function joinWith(token: string, hostname: string, csrPem: string) {
  const clients = nodeClients(cp);
  try {
    return await unary(clients.identity, clients.identity.join, {
      token,
      hostname,
      csrPem,
      addresses: ['127.0.0.1'],
      zone: '',
    });
  } finally {
    clients.close();
  }
}

describe('an agent whose join was committed but answered with an error', () => {
  it('joins with the same request on its next attempt, instead of being refused the token it used', async () => {
    const hostname = 'node-lost-answer';
    const token = await cp.createToken({ node: hostname });
    loseNextJoin = true;
    const logs: Array<Record<string, unknown> & { msg: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line !== '') logs.push(JSON.parse(line));
        done();
      },
    });
    const session = await startControlPlaneSession(
      agentConfigSchema.parse({
        hostname,
        dataDir: join(dir, hostname),
        addresses: ['127.0.0.1'],
        controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
      }),
      pino({ level: 'info' }, sink),
      { backoff: { baseMs: 100, capMs: 200, random: () => 0.5 } },
    );
    try {
      await waitFor(
        'the agent to join and sync',
        () => {
          const refused = session.refusal();
          if (refused !== undefined) throw new Error(`the agent gave up: ${refused.message}`);
          return session.state === 'connected' || undefined;
        },
        { timeoutMs: 30_000, detail: () => JSON.stringify(session.status()) },
      );
      expect(loseNextJoin).toBe(false);
      // Two attempts: the first answered with the store's error, the second with the certificate.
      expect(logs.filter((l) => l.msg === 'joining the mesh')).toHaveLength(2);
    } finally {
      await session.stop();
    }
  }, 60_000);
});

describe('a join whose transaction ran twice', () => {
  it('succeeds: the token was redeemed by this very request', async () => {
    const token = await cp.createToken({ node: 'node-retried' });
    replayNextJoin = true;
    const creds = await joinNode(cp, 'node-retried', { token });
    expect(replayed).toBe(1);
    const cert = new X509Certificate(creds.certificatePem);
    expect(cert.verify(new X509Certificate(cp.trustBundlePem).publicKey)).toBe(true);
  });

  it('answers the same request sent again with the same certificate, and refuses any other', async () => {
    const hostname = 'node-again';
    const token = await cp.createToken({ node: hostname });
    const { csrPem } = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, hostname));
    const first = await joinWith(token, hostname, csrPem);
    const again = await joinWith(token, hostname, csrPem);
    expect(again.certificatePem).toBe(first.certificatePem);
    const other = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, hostname));
    await expect(joinWith(token, hostname, other.csrPem)).rejects.toThrow(
      /join token \S+ was already used \(by node-again/,
    );
  });
});
