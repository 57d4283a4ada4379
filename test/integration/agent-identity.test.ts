// The agent's side of placement and revocation against a real control plane on loopback: a
// workload the node may not serve is refused while the others register, the agent says what
// to do and picks the workload up once the operator allows it (no restart); `weft leave`
// takes the node out of the mesh; a node deleted by the operator joins again with a new token.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configDumpView } from '../../src/agent/admin-views.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { unary } from '../../src/api/proto.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import {
  adminClient,
  type LogLine,
  runWeft,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

let root: string;
let cp: TestControlPlane;
let app: Server;
let appPort: number;
const sessions = new Set<ControlPlaneSession>();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-agent-identity-'));
  cp = await startControlPlane({ config: { syncCoalesce: '20ms' } });
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sessions) await s.stop();
  await cp?.stop({ removeDataDir: true });
  app?.close();
  await rm(root, { recursive: true, force: true });
});

function agentConfig(hostname: string, token: string, services: string[]) {
  return {
    hostname,
    dataDir: join(root, hostname),
    addresses: ['127.0.0.1'],
    controlPlane: { address: cp.grpcAddress, token, caPin: cp.caPin },
    workloads: services.map((service, i) => ({
      service,
      port: appPort,
      name: `${service}-${i}`,
      health: { intervalMs: 200 },
    })),
    heartbeatIntervalMs: 500,
  };
}

async function startAgent(config: ReturnType<typeof agentConfig>, lines: LogLine[] = []) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const t of chunk.toString().split('\n')) if (t) lines.push(JSON.parse(t) as LogLine);
      done();
    },
  });
  const session = await startControlPlaneSession(
    agentConfigSchema.parse(config),
    pino({ level: 'info' }, sink),
    { backoff: { baseMs: 50, capMs: 200 }, refusedRetryMs: 200 },
  );
  sessions.add(session);
  return session;
}

async function stopAgent(session: ControlPlaneSession): Promise<void> {
  await session.stop();
  sessions.delete(session);
}

async function admin<T>(fn: (a: ReturnType<typeof adminClient>) => Promise<T>): Promise<T> {
  const a = adminClient(cp);
  try {
    return await fn(a);
  } finally {
    a.close();
  }
}

describe('a workload the node may not serve', () => {
  let session: ControlPlaneSession;
  const lines: LogLine[] = [];

  it('is refused while the others register, and the agent says how to fix it', async () => {
    const token = await cp.createToken({ node: 'agent-p', services: ['echo'] });
    session = await startAgent(agentConfig('agent-p', token, ['echo', 'frontend']), lines);
    await waitFor('a certificate for svc/echo', () => session.certificates.service('echo'));
    const refused = await waitFor('frontend refused', () =>
      session.status().workloads.find((w) => w.service === 'frontend' && w.refused),
    );
    expect(refused.refused).toBe(
      'node agent-p may not serve service "frontend": allow it on the control plane with `weft node allow agent-p --service frontend`',
    );
    expect(session.certificates.service('frontend')).toBeUndefined();
    const logged = lines.filter((l) => l.msg === 'workload registration refused');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 50, workload: 'frontend-1', service: 'frontend' });
    // `weft status` shows it.
    const dump = configDumpView(session);
    const text = renderStatus(
      dump,
      [],
      { ready: true, state: 'connected', stale: false, version: 1, reasons: [] },
      Date.now(),
    );
    expect(text).toMatch(/frontend-1 +frontend +127\.0\.0\.1:\d+ +REFUSED: node agent-p may not/);
  });

  it('registers it once the operator allows it, without a restart, logging only the change', async () => {
    const before = lines.filter((l) => l.msg === 'workload registration refused').length;
    expect(before).toBe(1);
    await admin((a) =>
      unary(a, a.setNodeServices, { node: 'agent-p', allow: ['frontend'], disallow: [] }),
    );
    await waitFor('a certificate for svc/frontend', () => session.certificates.service('frontend'));
    expect(session.status().workloads.every((w) => !w.refused)).toBe(true);
    expect(lines.filter((l) => l.msg === 'workload registration refused')).toHaveLength(1);
    const workloads = await admin((a) => unary(a, a.get, { kind: 'Workload', name: '' }));
    expect(workloads.resources.map((r) => r.name).sort()).toEqual([
      'agent-p-echo-0',
      'agent-p-frontend-1',
    ]);
  });

  it('notices a `weft node disallow`: reports the refusal and drops the certificate', async () => {
    await admin((a) =>
      unary(a, a.setNodeServices, { node: 'agent-p', allow: [], disallow: ['frontend'] }),
    );
    await waitFor('frontend refused again', () =>
      session.status().workloads.find((w) => w.service === 'frontend' && w.refused),
    );
    await waitFor(
      'the frontend certificate dropped',
      () => !session.certificates.service('frontend'),
    );
    expect(session.certificates.service('echo')).toBeDefined();
    expect(lines.filter((l) => l.msg === 'workload registration refused')).toHaveLength(2);
  });

  it('`weft leave --config` takes the node out of the mesh', async () => {
    await stopAgent(session);
    const file = join(root, 'agent-p.yaml');
    await writeFile(file, JSON.stringify(agentConfig('agent-p', '', ['echo', 'frontend'])));
    const res = await runWeft(['leave', '--config', file]);
    expect(res).toMatchObject({
      exitCode: 0,
      stdout: 'node agent-p left the mesh: 2 certificates revoked, 1 workload removed\n',
    });
    const nodes = await admin(async (a) => (await unary(a, a.listNodes, {})).nodes);
    expect(nodes.map((n) => n.name)).not.toContain('agent-p');
    const again = await runWeft(['leave', '--config', file]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toBe(
      `weft: WEFT_E_CONFIG: this host has no mesh identity in ${join(root, 'agent-p')} (not joined, or it left already): nothing to leave\n`,
    );
  });
});

describe('a node deleted by the operator', () => {
  it('is refused, and joins again when given a new token', async () => {
    const first = await cp.createToken({ node: 'agent-r', services: ['echo'] });
    const session = await startAgent(agentConfig('agent-r', first, ['echo']));
    await waitFor('connected', () => session.state === 'connected');
    const oldSerial = session.certificates.node!.info.serial;
    await admin((a) => unary(a, a.deleteNode, { name: 'agent-r' }));
    const error = await waitFor('the removal reported', () => {
      const e = session.status().lastError;
      return e?.startsWith('this node was removed') ? e : undefined;
    });
    expect(error).toMatch(
      /^this node was removed from the mesh \(.*agent-r.*\).*`weft token create --node agent-r`/,
    );
    await stopAgent(session);

    // The operator puts a new token in the config and restarts the agent.
    const second = await cp.createToken({ node: 'agent-r', services: ['echo'] });
    const again = await startAgent(agentConfig('agent-r', second, ['echo']));
    await waitFor('connected again', () => again.state === 'connected', 10_000);
    expect(again.certificates.node!.info.serial).not.toBe(oldSerial);
    await waitFor('a certificate for svc/echo', () => again.certificates.service('echo'));
  });
});
