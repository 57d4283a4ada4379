// An agent following control plane replicas on one real etcd: two replicas run as real
// `weft controlplane --store etcd` processes (the agent knows both), a third in this process
// holds the CA they copy and makes the join token. The agent moves when its replica is stopped
// (SIGTERM: at once, before its backoff could end) and when it is killed (kill -9: after its
// backoff), keeps its snapshot meanwhile, gets a change applied through the surviving replica
// as a delta from the version it held, and keeps getting certificates from the replica it is on.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAdminServer } from '../../src/agent/admin-server.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { registerStatus } from '../../src/cli/commands/status.js';
import {
  type ControlPlaneSession,
  startControlPlaneSession,
} from '../../src/controlplane-client/session.js';
import { startControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { freePort, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { ROOT } from '../helpers/node-runtime.js';
import { waitFor } from '../helpers/wait.js';

/** The agent's reconnect backoff: every wait is just under 8 s (a fixed draw of the jitter). */
const BACKOFF = { baseMs: 8_000, capMs: 8_000, random: () => 0.99 };
/** Well under one backoff: a move within it did not wait for the backoff. */
const MOVE_WITHOUT_BACKOFF_MS = 5_000;

let etcd: TestEtcd;
let seed: TestControlPlane;
let app: Server;
let root: string;
const prefix = `/weft-agent-replicas-${process.pid}/`;

interface Replica {
  dir: string;
  grpcAddress: string;
  child: ChildProcess;
  output(): string;
  admin(): WeftAdminClient;
}

/** A `weft controlplane --store etcd` process on a given gRPC port, with the seed's CA copied. */
async function startReplica(dir: string, grpcPort: number): Promise<Replica> {
  writeFileSync(
    join(dir, 'cp.yaml'),
    [
      'listen: 127.0.0.1',
      `grpcPort: ${grpcPort}`,
      'httpPort: 0',
      'advertise: [127.0.0.1]',
      'workloadCertTtl: 4s',
      'syncCoalesce: 20ms',
      `store: { type: etcd, endpoints: ["${etcd.endpoint}"], prefix: "${prefix}" }`,
    ].join('\n'),
  );
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin/weft'), 'controlplane', '--config', join(dir, 'cp.yaml'), '--data-dir', dir],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const add = (c: Buffer) => {
    output += c.toString('utf8');
  };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  await waitFor(
    `the replica on port ${grpcPort} to be ready`,
    () => {
      if (child.exitCode !== null) throw new Error(`weft controlplane exited:\n${output}`);
      return output.includes('"control plane ready"') || undefined;
    },
    { timeoutMs: 60_000, detail: () => output },
  );
  const grpcAddress = `127.0.0.1:${grpcPort}`;
  return {
    dir,
    grpcAddress,
    child,
    output: () => output,
    admin: () => WeftAdminClient.open({ server: grpcAddress, credentialsDir: join(dir, 'admin') }),
  };
}

function replicaDir(): string {
  const dir = mkdtempSync(join(root, 'replica-'));
  for (const f of ['ca.key', 'ca.crt']) copyFileSync(join(seed.dataDir, f), join(dir, f));
  return dir;
}

const service = (name: string) => ({
  kind: 'Service',
  name,
  json: JSON.stringify({
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80, protocol: 'http' }] },
  }),
  revision: 0,
  source: `${name}.yaml: document 1`,
});

type AgentLog = Record<string, unknown> & { msg: string };

/** What `weft status` prints for the agent whose admin endpoint is on `port`. */
async function weftStatus(port: number): Promise<string> {
  const out: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
  try {
    const program = new Command('weft').exitOverride();
    registerStatus(program);
    await program.parseAsync(['node', 'weft', 'status', '--admin', `127.0.0.1:${port}`]);
  } finally {
    spy.mockRestore();
  }
  return out.join('\n');
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-agent-replicas-'));
  etcd = await startEtcd();
  seed = await startControlPlane({
    config: { store: { type: 'etcd', endpoints: [etcd.endpoint], prefix }, syncCoalesce: '20ms' },
  });
  app = createServer((s) => s.end());
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
}, 120_000);

afterAll(async () => {
  app?.close();
  await seed?.stop({ removeDataDir: true });
  await etcd?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('an agent with two control plane replicas', () => {
  const replicas = new Map<string, Replica>();
  const logs: AgentLog[] = [];
  let session: ControlPlaneSession;
  /** Set when the session ever had no snapshot after its first one. */
  let lostSnapshot = false;
  let certificates = 0;

  const on = () => session.status().controlPlane;
  const connectedTo = (address: string) =>
    session.state === 'connected' && on() === address ? true : undefined;

  afterAll(async () => {
    await session?.stop();
    for (const r of replicas.values()) {
      if (r.child.exitCode !== null || r.child.signalCode !== null) continue;
      const exited = once(r.child, 'exit');
      r.child.kill('SIGKILL');
      await exited;
    }
  });

  it('joins through one of them with a token made at a third, and syncs', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await startReplica(replicaDir(), await freePort());
      replicas.set(r.grpcAddress, r);
    }
    const token = await seed.createToken({ node: 'node-r', services: ['echo'] });
    const config = agentConfigSchema.parse({
      hostname: 'node-r',
      dataDir: join(root, 'agent'),
      addresses: ['127.0.0.1'],
      controlPlane: { addresses: [...replicas.keys()], token, caPin: seed.caPin },
      workloads: [
        {
          service: 'echo',
          port: (app.address() as { port: number }).port,
          health: { intervalMs: 200 },
        },
      ],
      heartbeatIntervalMs: 500,
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line !== '') logs.push(JSON.parse(line) as AgentLog);
        done();
      },
    });
    session = await startControlPlaneSession(config, pino({ level: 'info' }, sink), {
      backoff: BACKOFF,
    });
    let hadSnapshot = false;
    session.on('snapshot', () => {
      hadSnapshot = true;
    });
    session.on('state', () => {
      if (hadSnapshot && session.snapshot() === undefined) lostSnapshot = true;
    });
    session.on('certificate', () => {
      certificates += 1;
    });
    await waitFor('connected to a replica', () => session.state === 'connected' || undefined, {
      timeoutMs: 30_000,
    });
    expect(replicas.has(on())).toBe(true);
    await waitFor(
      'the workload certificate',
      () => session.certificates.serviceNames().length > 0 || undefined,
      {
        timeoutMs: 30_000,
      },
    );
  }, 120_000);

  it('moves to the other replica at once when its replica is stopped with SIGTERM', async () => {
    const first = on();
    const other = [...replicas.keys()].find((a) => a !== first)!;
    const stopped = replicas.get(first)!;
    const exited = once(stopped.child, 'exit');
    stopped.child.kill('SIGTERM');
    await waitFor('on the other replica', () => connectedTo(other), {
      timeoutMs: MOVE_WITHOUT_BACKOFF_MS,
      detail: () => JSON.stringify(session.status()),
    });
    const [code] = await exited;
    expect(code).toBe(0);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'moving to another control plane replica',
        from: first,
        to: other,
        why: 'stopping',
      }),
    );
    expect(session.snapshot()).toBeDefined();
    // The stopped replica comes back on its port (a restart), for the next test to move to.
    replicas.set(first, await startReplica(stopped.dir, Number(first.split(':')[1])));
  }, 120_000);

  it('moves after its backoff when its replica is killed, serving its snapshot meanwhile, and gets a change applied through the other as a delta', async () => {
    const killed = on();
    const survivor = [...replicas.keys()].find((a) => a !== killed)!;
    const held = session.status().version;
    expect(held).toBeGreaterThan(0);
    const logsBefore = logs.length;
    replicas.get(killed)!.child.kill('SIGKILL');
    await waitFor('the agent to notice', () => session.state === 'stale' || undefined, {
      timeoutMs: 30_000,
    });
    // Away from every replica, it serves what it had.
    expect(session.snapshot()?.version).toBe(held);
    expect(session.view()).toBeDefined();

    // A change made through the surviving replica while the agent is away.
    const admin = replicas.get(survivor)!.admin();
    try {
      await admin.apply([service('after-the-kill')], 'after-the-kill.yaml');
    } finally {
      admin.close();
    }
    await waitFor('on the surviving replica', () => connectedTo(survivor), {
      timeoutMs: 60_000,
      detail: () => JSON.stringify(session.status()),
    });
    await waitFor(
      'the change',
      () => session.snapshot()?.resources.has('Service/after-the-kill') || undefined,
      { timeoutMs: 30_000 },
    );
    const after = logs.slice(logsBefore);
    expect(after).toContainEqual(
      expect.objectContaining({
        msg: 'moving to another control plane replica',
        from: killed,
        to: survivor,
        why: 'failed',
      }),
    );
    // The first snapshot from the new replica is a delta from what the agent held.
    const accepted = after.filter((l) => l.msg === 'snapshot accepted');
    expect(accepted[0]).toMatchObject({ previous: held, full: false });
    expect(accepted.every((l) => l.full === false)).toBe(true);
    expect(lostSnapshot).toBe(false);

    // Certificates come from the replica it is on now (renewed at half-life of 4 s).
    const issued = certificates;
    await waitFor('a renewed certificate', () => certificates > issued, { timeoutMs: 30_000 });
    expect(session.state).toBe('connected');
    expect(on()).toBe(survivor);

    // `weft status` names the replica the agent is on, and the ones it knows.
    const admin2 = await startAdminServer({ address: '127.0.0.1', port: 0, session });
    try {
      const status = await weftStatus(admin2.port);
      expect(status).toMatch(
        new RegExp(`^Control plane: +${survivor} \\(one of 2 replicas: [^)]*${killed}`, 'm'),
      );
    } finally {
      await admin2.close();
    }
  }, 180_000);
});
