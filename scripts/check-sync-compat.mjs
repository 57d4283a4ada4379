// Sync between two builds of weft, both ways, in one process on loopback: the control plane of
// one build (its own dist/ and proto/) and the agent session of the other, for every pairing of
// this checkout (new) and another (old, e.g. a copy of main's bin, dist, proto, native and
// package.json with node_modules linked). For each pairing: 400 Services applied, the agent's
// snapshot holds them all and its ack reaches the control plane, one more Service comes as a
// delta, and the bytes the control plane pushed (its metric) say whether the snapshot went
// compressed. Exits 1 if any pairing fails.
// Usage: scripts/with-runtime node scripts/check-sync-compat.mjs OLD_CHECKOUT
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';

const NEW = fileURLToPath(new URL('..', import.meta.url));
const OLD = process.argv[2] && resolve(process.argv[2]);
if (!OLD) {
  console.error('usage: node scripts/check-sync-compat.mjs OLD_CHECKOUT');
  process.exit(2);
}
const SERVICES = 400;
const log = pino({ level: 'silent' });
const load = (root, path) => import(join(root, 'dist', path));

async function waitFor(what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const service = (i) => {
  const name = `svc-${String(i).padStart(4, '0')}`;
  const doc = {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80, targetPort: 8000, protocol: 'http' }] },
  };
  return { kind: 'Service', name, json: JSON.stringify(doc), revision: 0 };
};

async function pairing(cpRoot, agentRoot) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-compat-'));
  const { ControlPlane } = await load(cpRoot, 'controlplane/control-plane.js');
  const { parseControlPlaneConfig } = await load(cpRoot, 'controlplane/config.js');
  const { WeftAdminClient } = await load(cpRoot, 'api/admin-client.js');
  const { startControlPlaneSession } = await load(agentRoot, 'controlplane-client/session.js');
  const { agentConfigSchema } = await load(agentRoot, 'agent/config.js');
  const cp = await ControlPlane.start({
    config: parseControlPlaneConfig(
      {
        listen: '127.0.0.1',
        grpcPort: 0,
        httpPort: 0,
        advertise: ['127.0.0.1'],
        syncCoalesce: '20ms',
        dataDir: join(dir, 'cp'),
      },
      'compat',
    ),
    log,
    defaultMetrics: false,
  });
  const admin = WeftAdminClient.open({
    server: cp.grpcAddress,
    credentialsDir: cp.adminCredentialsDir,
  });
  let session;
  try {
    await admin.apply(
      Array.from({ length: SERVICES }, (_, i) => service(i)),
      'services.yaml',
    );
    const { token } = await cp.createToken({
      ttlSeconds: 600,
      description: 'compat',
      node: 'node-a',
      services: [],
    });
    session = await startControlPlaneSession(
      agentConfigSchema.parse({
        hostname: 'node-a',
        dataDir: join(dir, 'agent'),
        addresses: ['127.0.0.1'],
        controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
        workloads: [],
        heartbeatIntervalMs: 500,
      }),
      log,
      { backoff: { baseMs: 50, capMs: 400 } },
    );
    const services = () =>
      [...(session.snapshot()?.resources.values() ?? [])].filter((r) => r.kind === 'Service')
        .length;
    await waitFor(`${SERVICES} services in the agent`, () => services() === SERVICES);
    const version = session.snapshot().version;
    await waitFor('the ack at the control plane', async () =>
      (await admin.listNodes()).some((n) => n.name === 'node-a' && n.ackedVersion === version),
    );
    const metrics = await (await fetch(`${cp.httpUrl}/metrics`)).text();
    const pushed = /^weft_controlplane_sync_push_bytes_total (\d+)/m.exec(metrics)?.[1];
    await admin.apply([service(SERVICES)], 'one-more.yaml');
    await waitFor('the delta with one more service', () => services() === SERVICES + 1);
    return `ok: ${SERVICES} services then one more by delta, acked; control plane pushed ${pushed} bytes for the snapshot`;
  } finally {
    await session?.stop();
    admin.close();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

let failed = false;
for (const [cp, agent] of [
  [OLD, NEW],
  [NEW, OLD],
  [NEW, NEW],
  [OLD, OLD],
]) {
  const name = (r) => (r === NEW ? 'new' : 'old');
  try {
    console.log(`${name(cp)} control plane, ${name(agent)} agent: ${await pairing(cp, agent)}`);
  } catch (err) {
    failed = true;
    console.log(`${name(cp)} control plane, ${name(agent)} agent: FAILED: ${err.stack}`);
  }
}
process.exit(failed ? 1 : 0);
