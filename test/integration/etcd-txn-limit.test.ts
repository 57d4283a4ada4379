// An apply is one etcd transaction, and etcd bounds a transaction (--max-txn-ops, 128 by
// default): an apply too large for it is refused saying so and what to do, and changes
// nothing; one under the limit goes through. (Found by bench scenario 6 against replicas,
// whose 250-Service applies etcd refused with "too many operations in txn request".)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { WeftError } from '../../src/errors.js';
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';

let etcd: TestEtcd;
let cp: TestControlPlane;
let admin: WeftAdminClient;

const services = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => {
    const name = `${prefix}-${i}`;
    return {
      kind: 'Service',
      name,
      json: JSON.stringify({
        apiVersion: 'weft/v1',
        kind: 'Service',
        metadata: { name },
        spec: { ports: [{ port: 80 }] },
      }),
      revision: 0,
      source: `${prefix}.yaml: document ${i + 1}`,
    };
  });

beforeAll(async () => {
  etcd = await startEtcd();
  cp = await startControlPlane({
    config: { store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: '/weft-txn-limit/' } },
  });
  admin = WeftAdminClient.open({
    server: cp.grpcAddress,
    credentialsDir: cp.adminCredentials.dir,
  });
}, 120_000);

afterAll(async () => {
  admin?.close();
  await cp?.stop({ removeDataDir: true });
  await etcd?.stop();
});

describe('an apply larger than etcd takes in one transaction', () => {
  it('is refused naming --max-txn-ops and what to do, and changes nothing', async () => {
    const err = await admin.apply(services('big', 100), 'big.yaml').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('WEFT_E_STORE');
    expect((err as WeftError).message).toContain(
      'etcd refused a transaction of 200 writes and 200 checks',
    );
    expect((err as WeftError).message).toContain('--max-txn-ops (128 by default)');
    expect((err as WeftError).message).toContain('apply fewer documents at once');
    const listed = await admin.get('Service');
    expect(listed.filter((r) => r.name.startsWith('big-'))).toEqual([]);
  });

  it('takes the same Services in applies under the limit', async () => {
    await admin.apply(services('big', 100).slice(0, 50), 'big-1.yaml');
    await admin.apply(services('big', 100).slice(50), 'big-2.yaml');
    const listed = await admin.get('Service');
    expect(listed.filter((r) => r.name.startsWith('big-'))).toHaveLength(100);
  });
});
