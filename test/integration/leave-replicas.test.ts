// `weft leave` with several control plane replicas on a real etcd (started by this file): the
// replicas listed are asked in turn, so a host leaves while the first one listed is down; with
// none up it fails, saying so, and keeps its identity to try again.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../src/agent/config.js';
import { unary } from '../../src/api/proto.js';
import { IdentityStore } from '../../src/controlplane-client/identity-store.js';
import { startControlPlaneSession } from '../../src/controlplane-client/session.js';
import {
  adminClient,
  runWeft,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { freePort, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let root: string;
let a: TestControlPlane;
let b: TestControlPlane;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-leave-replicas-'));
  etcd = await startEtcd();
  const caKekFile = join(root, 'ca-kek');
  writeFileSync(caKekFile, randomBytes(32), { mode: 0o600 });
  const config = {
    store: {
      type: 'etcd' as const,
      endpoints: [etcd.endpoint],
      prefix: `/weft-leave-${process.pid}/`,
    },
    caKekFile,
  };
  a = await startControlPlane({ config });
  b = await startControlPlane({ config });
}, 120_000);

afterAll(async () => {
  await a?.stop({ removeDataDir: true });
  await b?.stop({ removeDataDir: true });
  await etcd?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function listNodes(cp: TestControlPlane): Promise<string[]> {
  const admin = adminClient(cp);
  try {
    return (await unary(admin, admin.listNodes, {})).nodes.map((n) => n.name);
  } finally {
    admin.close();
  }
}

describe('weft leave over control plane replicas', () => {
  it('asks the next replica when the first one listed is down, and the node is out at every replica', async () => {
    const hostname = 'node-leaving';
    const dataDir = join(root, hostname);
    const token = await b.createToken({ node: hostname });
    const joinConfig = agentConfigSchema.parse({
      hostname,
      dataDir,
      addresses: ['127.0.0.1'],
      controlPlane: { address: b.grpcAddress, token, caPin: b.caPin },
    });
    const session = await startControlPlaneSession(joinConfig, pino({ level: 'silent' }));
    await waitFor('joined', () => session.state === 'connected' || undefined, {
      timeoutMs: 30_000,
    });
    await session.stop();
    expect(await listNodes(a)).toContain(hostname);

    const down = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const file = join(root, 'agent.yaml');
    const write = (addresses: string[]) =>
      writeFileSync(
        file,
        JSON.stringify({ hostname, dataDir, controlPlane: { addresses, caPin: b.caPin } }),
      );

    // No replica up: refused, saying which were tried; the identity stays for another try.
    write(down);
    const none = await runWeft(['leave', '--config', file, '--timeout', '3000']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain(
      `no control plane replica could take node ${hostname} out of the mesh (its identity is kept`,
    );
    for (const d of down) expect(none.stderr).toContain(`${d}: cannot reach`);
    expect(await new IdentityStore(dataDir).loadNode()).toBeDefined();

    // The first listed down, the next one up: out of the mesh, at every replica.
    write([down[0]!, a.grpcAddress]);
    const left = await runWeft(['leave', '--config', file, '--timeout', '3000']);
    expect(left).toMatchObject({ exitCode: 0, stderr: '' });
    expect(left.stdout).toContain(`node ${hostname} left the mesh`);
    expect(await listNodes(b)).not.toContain(hostname);
    expect(await new IdentityStore(dataDir).loadNode()).toBeUndefined();
  }, 120_000);
});
