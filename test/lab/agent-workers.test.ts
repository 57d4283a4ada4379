// The agent as a master and workers, in lab hosts with real capture: connections spread over
// two workers, a worker killed with SIGKILL is replaced while the other's connections carry on,
// and a reload (SIGHUP) keeps every open connection working on the old workers while new ones
// go to the new workers, which then are the only ones left once the old connections closed.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerStatus } from '../../src/agent/workers/worker-pool.js';
import { MeshLab } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const HELD = fixture('held-connections.mjs');

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 9000, protocol: tcp }] }
`;

let mesh: MeshLab;
let dir: string;

async function workers(): Promise<WorkerStatus[]> {
  const r = await mesh.lab.exec('node1', ['curl', '-s', 'http://127.0.0.1:15000/workers']);
  return (JSON.parse(r.stdout) as { workers: WorkerStatus[] }).workers;
}

const agentPid = () =>
  mesh.lab.processes().find((p) => p.host === 'node1' && p.name === 'agent')!.pid;

/** A client on node1 holding `n` connections to echo.mesh; answers commands (fixture). */
class Held {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private taken = 0;

  constructor(n: number) {
    this.child = mesh.lab.spawn('node1', [process.execPath, HELD, 'echo.mesh', '9000', String(n)], {
      user: 'weftapp',
    });
    let buffered = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      this.lines.push(...parts);
    });
  }

  /** The next answer (the first one: the connections opened and echoed once). */
  next(): Promise<{ ok: number; failed: number }> {
    return waitFor(
      'an answer from the held-connections client',
      () => {
        if (this.lines.length <= this.taken) return undefined;
        return JSON.parse(this.lines[this.taken++]!) as { ok: number; failed: number };
      },
      30_000,
    );
  }

  ask(command: string): Promise<{ ok: number; failed: number }> {
    this.child.stdin?.write(`${command}\n`);
    return this.next();
  }

  close(): void {
    this.child.stdin?.end();
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
        ],
      },
    ],
    resourceFiles: [file],
    agentConfig: { workers: 2 },
  });
  const probe = new Held(1);
  await waitFor(
    'echo.mesh answers through the mesh',
    async () => (await probe.ask('open 1')).ok === 1,
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
    expect(await held.next()).toEqual({ ok: 40, failed: 0 });
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
    expect(await held.next()).toEqual({ ok: 20, failed: 0 });
    const [victim, survivor] = await waitFor('20 connections held by the workers', async () => {
      const w = (await workers()).filter((x) => x.state === 'serving');
      return w.reduce((n, x) => n + x.connections, 0) === 20 && w.length === 2 ? w : undefined;
    });
    process.kill(victim!.pid, 'SIGKILL');
    // Exactly the survivor's connections still work; the victim's were lost with it.
    expect(await held.ask('ping')).toEqual({
      ok: survivor!.connections,
      failed: victim!.connections,
    });
    const replaced = await waitFor('a new worker in place of the one killed', async () => {
      const w = (await workers()).filter((x) => x.state === 'serving');
      return w.length === 2 && !w.some((x) => x.pid === victim!.pid) ? w : undefined;
    });
    expect(replaced.map((x) => x.pid)).toContain(survivor!.pid);
    expect(await held.ask('open 20')).toEqual({ ok: 20, failed: 0 });
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
    expect(await kept.next()).toEqual({ ok: 10, failed: 0 });
    // New connections while the new workers start and the old ones retire: all answered.
    const during = new Held(0);
    await during.next();
    process.kill(agentPid(), 'SIGHUP');
    expect(await during.ask('open 30')).toEqual({ ok: 30, failed: 0 });
    const after = await waitFor('new workers serving, the old ones retiring', async () => {
      const w = await workers();
      const fresh = w.filter((x) => x.generation > oldGeneration && x.state === 'serving');
      const old = w.filter((x) => x.generation === oldGeneration && x.state === 'retiring');
      return fresh.length === 2 && old.reduce((n, x) => n + x.connections, 0) === 10
        ? { fresh, old }
        : undefined;
    });
    expect(after.old.length).toBeGreaterThan(0);
    // The kept connections still work, on the retiring workers.
    expect(await kept.ask('ping')).toEqual({ ok: 10, failed: 0 });
    // New connections go to the new workers only.
    const later = new Held(10);
    expect(await later.next()).toEqual({ ok: 10, failed: 0 });
    await waitFor('the new connections held by the new workers', async () => {
      const w = await workers();
      const fresh = w.filter((x) => x.generation > oldGeneration);
      const old = w.filter((x) => x.generation === oldGeneration);
      return (
        fresh.reduce((n, x) => n + x.connections, 0) === 10 &&
        old.reduce((n, x) => n + x.connections, 0) === 10
      );
    });
    expect(await kept.ask('ping')).toEqual({ ok: 10, failed: 0 });
    // Their connections closed, the old workers exit.
    kept.close();
    await waitFor('the old workers gone', async () =>
      (await workers()).every((x) => x.generation > oldGeneration),
    );
    expect(await later.ask('ping')).toEqual({ ok: 10, failed: 0 });
    later.close();
    during.close();
  });
});
