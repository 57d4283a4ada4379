// The agent as a master and workers, in lab hosts with real capture: connections spread over
// two workers, a worker killed with SIGKILL is replaced while the other's connections carry on,
// and a reload (SIGHUP) keeps every open connection working on the old workers while new ones
// go to the new workers, which then are the only ones left once the old connections closed.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MasterInfo } from '../../src/agent/workers/master.js';
import type { WorkerStatus } from '../../src/agent/workers/worker-pool.js';
import { MeshLab } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const HELD = fixture('held-connections.mjs');
const KEEPALIVE = fixture('keepalive-client.mjs');

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 9000, protocol: tcp }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec: { ports: [{ port: 80, targetPort: 8080, protocol: http }] }
`;

let mesh: MeshLab;
let dir: string;

async function workers(): Promise<WorkerStatus[]> {
  return (await agentStatus()).workers;
}

/** The admin's /workers: the master and its workers (fails while the master execs). */
async function agentStatus(): Promise<{ master: MasterInfo; workers: WorkerStatus[] }> {
  const r = await mesh.lab.exec('node1', ['curl', '-s', 'http://127.0.0.1:15000/workers']);
  return JSON.parse(r.stdout) as { master: MasterInfo; workers: WorkerStatus[] };
}

/** Its state letter in /proc (Z: a zombie nobody reaped), or undefined once reaped. */
function procState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\w)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

const agentPid = () =>
  mesh.lab.processes().find((p) => p.host === 'node1' && p.name === 'agent')!.pid;

/** Generic line-per-answer client on node1 (the fixtures above). */
class LineClient {
  protected readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private taken = 0;

  constructor(argv: string[]) {
    this.child = mesh.lab.spawn('node1', [process.execPath, ...argv], { user: 'weftapp' });
    let buffered = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      this.lines.push(...parts);
    });
  }

  next<T>(): Promise<T> {
    return waitFor(
      'an answer from the client on node1',
      () => {
        if (this.lines.length <= this.taken) return undefined;
        return JSON.parse(this.lines[this.taken++]!) as T;
      },
      30_000,
    );
  }

  ask<T>(command: string): Promise<T> {
    this.child.stdin?.write(`${command}\n`);
    return this.next<T>();
  }

  close(): void {
    this.child.stdin?.end();
  }
}

type Counts = { ok: number; failed: number };

/** A client on node1 holding `n` connections to echo.mesh (held-connections.mjs). */
class Held extends LineClient {
  constructor(n: number) {
    super([HELD, 'echo.mesh', '9000', String(n)]);
  }

  counts(): Promise<Counts> {
    return this.next<Counts>();
  }

  command(c: string): Promise<Counts> {
    return this.ask<Counts>(c);
  }
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-workers-'));
  chmodSync(dir, 0o755);
  const file = join(dir, 'services.yaml');
  writeFileSync(file, RESOURCES);
  mesh = await MeshLab.up({
    name: `wrk${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1', workloads: [] },
      {
        name: 'node2',
        workloads: [
          {
            service: 'echo',
            port: 9000,
            command: [process.execPath, fixture('tcp-echo.mjs'), '9000'],
          },
          {
            service: 'web',
            port: 8080,
            command: [
              process.execPath,
              fileURLToPath(new URL('../../scripts/demo/echo-server.mjs', import.meta.url)),
              '8080',
            ],
          },
        ],
      },
    ],
    resourceFiles: [file],
    agentConfig: { workers: 2 },
  });
  const probe = new Held(1);
  await waitFor(
    'echo.mesh answers through the mesh',
    async () => (await probe.command('open 1')).ok === 1,
    30_000,
  );
  probe.close();
});

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('an agent with two workers', () => {
  it('spreads connections over both (each 35-65 %)', async () => {
    const held = new Held(40);
    expect(await held.counts()).toEqual({ ok: 40, failed: 0 });
    const counts = await waitFor('both workers report their connections', async () => {
      const w = await workers();
      const serving = w.filter((x) => x.state === 'serving');
      const total = serving.reduce((n, x) => n + x.connections, 0);
      return serving.length === 2 && total === 40 ? serving.map((x) => x.connections) : undefined;
    });
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(14);
      expect(c).toBeLessThanOrEqual(26);
    }
    held.close();
  });

  it('replaces a worker killed with SIGKILL; the other worker keeps its connections', async () => {
    const held = new Held(20);
    expect(await held.counts()).toEqual({ ok: 20, failed: 0 });
    const [victim, survivor] = await waitFor('20 connections held by the workers', async () => {
      const w = (await workers()).filter((x) => x.state === 'serving');
      return w.reduce((n, x) => n + x.connections, 0) === 20 && w.length === 2 ? w : undefined;
    });
    process.kill(victim!.pid, 'SIGKILL');
    // Exactly the survivor's connections still work; the victim's were lost with it.
    expect(await held.command('ping')).toEqual({
      ok: survivor!.connections,
      failed: victim!.connections,
    });
    const replaced = await waitFor('a new worker in place of the one killed', async () => {
      const w = (await workers()).filter((x) => x.state === 'serving');
      return w.length === 2 && !w.some((x) => x.pid === victim!.pid) ? w : undefined;
    });
    expect(replaced.map((x) => x.pid)).toContain(survivor!.pid);
    expect(await held.command('open 20')).toEqual({ ok: 20, failed: 0 });
    expect(
      await labMetric(mesh.lab, 'node1', /^weft_agent_worker_restarts_total\{reason="signal"\}/),
    ).toBeGreaterThanOrEqual(1);
    held.close();
  });

  it('a reload keeps open connections on the old workers and sends new ones to new workers', async () => {
    const before = await waitFor('no connection held', async () => {
      const w = await workers();
      return w.every((x) => x.connections === 0 && x.state === 'serving') ? w : undefined;
    });
    const oldGeneration = before[0]!.generation;
    const kept = new Held(10);
    expect(await kept.counts()).toEqual({ ok: 10, failed: 0 });
    // New connections while the new workers start and the old ones retire: all answered.
    const during = new Held(0);
    await during.counts();
    process.kill(agentPid(), 'SIGHUP');
    expect(await during.command('open 30')).toEqual({ ok: 30, failed: 0 });
    const after = await waitFor('new workers serving, the old ones retiring', async () => {
      const w = await workers();
      const fresh = w.filter((x) => x.generation > oldGeneration && x.state === 'serving');
      const old = w.filter((x) => x.generation === oldGeneration && x.state === 'retiring');
      return fresh.length === 2 && old.reduce((n, x) => n + x.connections, 0) === 10
        ? { fresh, old }
        : undefined;
    });
    expect(after.old.length).toBeGreaterThan(0);
    // `weft status` shows both generations and what the old one still holds.
    const status = (await mesh.weft('node1', ['status'])).stdout;
    expect(status).toMatch(
      new RegExp(`^ +${after.old[0]!.pid} +${oldGeneration} +retiring +\\d+ +\\S+$`, 'm'),
    );
    expect(status).toMatch(
      new RegExp(`^ +${after.fresh[0]!.pid} +\\d+ +serving +\\d+ +\\S+$`, 'm'),
    );
    // The kept connections still work, on the retiring workers.
    expect(await kept.command('ping')).toEqual({ ok: 10, failed: 0 });
    // New connections go to the new workers only.
    const later = new Held(10);
    expect(await later.counts()).toEqual({ ok: 10, failed: 0 });
    await waitFor('the new connections held by the new workers', async () => {
      const w = await workers();
      const fresh = w.filter((x) => x.generation > oldGeneration);
      const old = w.filter((x) => x.generation === oldGeneration);
      return (
        fresh.reduce((n, x) => n + x.connections, 0) === 10 &&
        old.reduce((n, x) => n + x.connections, 0) === 10
      );
    });
    expect(await kept.command('ping')).toEqual({ ok: 10, failed: 0 });
    // Their connections closed, the old workers exit.
    kept.close();
    await waitFor('the old workers gone', async () =>
      (await workers()).every((x) => x.generation > oldGeneration),
    );
    expect(await later.command('ping')).toEqual({ ok: 10, failed: 0 });
    later.close();
    during.close();
  });

  it('a reload asks HTTP keep-alive clients to go away, so the old workers empty early', async () => {
    const before = await waitFor('no connection held', async () => {
      const w = await workers();
      return w.every((x) => x.connections === 0 && x.state === 'serving') ? w : undefined;
    });
    const oldGeneration = before[0]!.generation;
    type Got = { status: number; connection: string; localPort: number };
    const client = new LineClient([KEEPALIVE, 'http://web.mesh/']);
    const first = await client.ask<Got>('get');
    expect(first).toMatchObject({ status: 200, connection: 'keep-alive' });
    expect(await client.ask<Got>('get')).toMatchObject({ status: 200, localPort: first.localPort });
    process.kill(agentPid(), 'SIGHUP');
    await waitFor('the old workers retiring', async () =>
      (await workers()).some((x) => x.generation === oldGeneration && x.state === 'retiring'),
    );
    // The old worker closed the idle keep-alive connection (or answers once with Connection:
    // close): the client's next requests go on a new connection, to a new worker.
    const again = await client.ask<Got>('get');
    expect(again.status).toBe(200);
    const moved = again.localPort !== first.localPort ? again : await client.ask<Got>('get');
    expect(moved.status).toBe(200);
    expect(moved.localPort).not.toBe(first.localPort);
    // The old workers had only that connection: they exit long before drain.maxMs (15 min).
    await waitFor('the old workers gone', async () =>
      (await workers()).every((x) => x.generation > oldGeneration),
    );
    expect(await client.ask<Got>('get')).toMatchObject({ status: 200, localPort: moved.localPort });
    client.close();
  });

  it('a reload to fewer workers leaves no socket unserved, also while old workers drain', async () => {
    const setWorkers = (n: number) => {
      const file = mesh.configFile('node1');
      const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      writeFileSync(file, JSON.stringify({ ...config, workers: n }, null, 2));
    };
    const reloaded = async (size: number) => {
      const before = Math.max(...(await workers()).map((w) => w.generation));
      process.kill(agentPid(), 'SIGHUP');
      await waitFor(`${size} new workers serving`, async () => {
        const w = (await workers()).filter((x) => x.generation > before);
        return w.length === size && w.every((x) => x.state === 'serving');
      });
    };
    // The old generation keeps a connection, so it drains while the new one serves.
    const kept = new Held(4);
    expect(await kept.counts()).toEqual({ ok: 4, failed: 0 });
    setWorkers(1);
    await reloaded(1);
    // Every new connection is accepted (none waits in a socket of a slot that has no worker).
    const after = new Held(0);
    await after.counts();
    expect(await after.command('open 40')).toEqual({ ok: 40, failed: 0 });
    expect(await kept.command('ping')).toEqual({ ok: 4, failed: 0 });
    setWorkers(2);
    await reloaded(2);
    expect(await after.command('open 40')).toEqual({ ok: 40, failed: 0 });
    kept.close();
    after.close();
  });

  it('an upgrade (SIGUSR2) replaces the master in place: same pid, open connections kept, new ones all served, the previous workers reaped', async () => {
    const before = await waitFor('no connection held', async () => {
      const w = await workers();
      return w.every((x) => x.connections === 0 && x.state === 'serving') ? w : undefined;
    });
    const pid = agentPid();
    const { master } = await agentStatus();
    const oldGeneration = Math.max(...before.map((w) => w.generation));
    const kept = new Held(10);
    expect(await kept.counts()).toEqual({ ok: 10, failed: 0 });
    const during = new Held(0);
    await during.counts();
    const opened = () => labMetric(mesh.lab, 'node1', /^weft_tcp_open_total\{/);
    const openedBefore = await opened();
    process.kill(pid, 'SIGUSR2');
    // New connections while the master execs and its new workers start: all answered.
    expect(await during.command('open 30')).toEqual({ ok: 30, failed: 0 });
    const after = await waitFor(
      'a new master image (same pid) with new workers serving, the previous ones retiring',
      async () => {
        const s = await agentStatus().catch(() => undefined);
        if (!s || s.master.execs !== master.execs + 1) return undefined;
        const fresh = s.workers.filter(
          (x) => x.generation > oldGeneration && x.state === 'serving',
        );
        const old = s.workers.filter((x) => x.generation <= oldGeneration);
        return fresh.length === 2 && old.every((x) => x.state === 'retiring') ? s : undefined;
      },
      60_000,
    );
    expect(after.master.pid).toBe(pid);
    expect(agentPid()).toBe(pid);
    expect(after.master.startedAt > master.startedAt).toBe(true);
    // The kept connections still work, on the previous master's workers.
    expect(await kept.command('ping')).toEqual({ ok: 10, failed: 0 });
    const later = new Held(10);
    expect(await later.counts()).toEqual({ ok: 10, failed: 0 });
    expect(await kept.command('ping')).toEqual({ ok: 10, failed: 0 });
    // No counter of the agent goes backwards across the exec: the previous image's counts
    // (its workers' as last scraped) are carried over, the new connections added.
    expect(await opened()).toBeGreaterThanOrEqual(openedBefore + 10);
    // The previous image's workers are counted while they drain.
    expect(await labMetric(mesh.lab, 'node1', /^weft_agent_workers\{state="retiring"\}/)).toBe(
      before.length,
    );
    // Their connections closed, the previous workers exit and are reaped (no zombie left).
    kept.close();
    await waitFor(
      'the previous workers gone and reaped',
      async () =>
        (await workers()).every((x) => x.generation > oldGeneration) &&
        before.every((w) => procState(w.pid) === undefined),
      60_000,
    );
    expect(await later.command('ping')).toEqual({ ok: 10, failed: 0 });
    later.close();
    during.close();
  });

  it('an upgrade the master must refuse (a capture change) leaves it and its workers serving, with the reason', async () => {
    const file = mesh.configFile('node1');
    const original = readFileSync(file, 'utf8');
    const { master, workers: before } = await agentStatus();
    const held = new Held(5);
    expect(await held.counts()).toEqual({ ok: 5, failed: 0 });
    try {
      const changed = JSON.parse(original) as { capture: Record<string, unknown> };
      changed.capture.outboundPort = 15101;
      writeFileSync(file, JSON.stringify(changed));
      process.kill(agentPid(), 'SIGUSR2');
      const refused = await waitFor('the upgrade refused', async () => {
        const s = await agentStatus();
        return s.master.lastUpgrade ? s.master : undefined;
      });
      expect(refused.lastUpgrade).toMatchObject({ outcome: 'refused' });
      expect(refused.lastUpgrade!.reason).toMatch(/cannot change capture/);
      expect(refused.execs).toBe(master.execs);
      expect((await workers()).map((w) => w.pid).sort()).toEqual(before.map((w) => w.pid).sort());
    } finally {
      writeFileSync(file, original);
    }
    expect(await held.command('ping')).toEqual({ ok: 5, failed: 0 });
    expect(await held.command('open 5')).toEqual({ ok: 5, failed: 0 });
    held.close();
  });
});
