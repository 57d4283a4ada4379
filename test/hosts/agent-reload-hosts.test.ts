// The agent's master and workers on hosts that boot systemd (issue 16): weft installed with
// scripts/install.sh on cp, node1 (an echo service) and node2 (its client); connections held
// open through the mesh survive `systemctl reload weft-agent` on both ends and an upgrade in
// place (install.sh again, which reloads), while every new connection made meanwhile
// succeeds; `systemctl stop` drains within its limit while the socket units queue new
// connections, which are served once the agent is back.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { Guest, sleep } from './guest.js';
import { ensureRootfs } from './rootfs.js';

const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = '/src/weft';
const NODE = '/opt/weft/runtime/node/bin/node';
const LOAD = `${SRC}/test/hosts/load-client.mjs`;
const ECHO = `${SRC}/test/fixtures/tcp-echo.mjs`;
const SERVICES = `apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 7000, protocol: tcp }] }
`;

let lab: Lab;
const guests = new Map<string, Guest>();
const g = (name: string) => guests.get(name)!;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(300);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

interface LoadResult {
  ok: number;
  failed: number;
  maxMs: number;
  errors: string[];
}

/** load-client.mjs on node2 to echo.mesh:7000; resolves with its result when it ends. */
function load(seconds: number, concurrency: number, holdMs: number): Promise<LoadResult> {
  const child = g('node2').spawn([
    'runuser',
    '-u',
    'weftapp',
    '--',
    NODE,
    LOAD,
    'echo.mesh',
    '7000',
    String(seconds),
    String(concurrency),
    String(holdMs),
  ]);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return new Promise((resolve, reject) =>
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as LoadResult);
      } catch {
        reject(new Error(`load client printed: ${out}`));
      }
    }),
  );
}

async function install(host: string, args: string[], input?: string) {
  const r = await g(host).exec([`${SRC}/scripts/install.sh`, ...args], {
    allowFailure: true,
    timeoutMs: 180_000,
    input,
  });
  const journal =
    r.exitCode === 0
      ? ''
      : (await g(host).sh('journalctl --no-pager -n 40 -u weft-agent -u weft-controlplane')).stdout;
  return { ...r, explain: `${r.stdout}\n${r.stderr}\n--- journal ---\n${journal}` };
}

interface Worker {
  pid: number;
  generation: number;
  state: string;
  connections: number;
}

async function workers(host: string): Promise<Worker[]> {
  const r = await g(host).exec(['weft', 'status', '-o', 'json']);
  return (JSON.parse(r.stdout) as { workers: Worker[] }).workers;
}

const newest = (ws: Worker[]) => Math.max(...ws.map((w) => w.generation));

/** Reloads the host's agent and waits until a newer generation serves. */
async function reload(host: string, how: () => Promise<unknown>): Promise<void> {
  const before = newest(await workers(host));
  await how();
  await until(`${host}: new workers serving`, async () => {
    const ws = await workers(host);
    return ws.some((w) => w.generation > before && w.state === 'serving');
  });
}

beforeAll(async () => {
  requireRootAndTools(['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'iptables']);
  const rootfs = await ensureRootfs();
  const tag = randomBytes(2).toString('hex');
  lab = await Lab.up({
    name: `wr${tag}`,
    hosts: [{ name: 'cp' }, { name: 'node1' }, { name: 'node2' }],
  });
  const logs = mkdtempSync(join(tmpdir(), 'weft-reload-hosts-'));
  await Promise.all(
    ['cp', 'node1', 'node2'].map(async (name) => {
      guests.set(
        name,
        await Guest.boot({
          machine: `wr${tag}-${name}`,
          rootfs: rootfs.dir,
          netns: lab.host(name).netns,
          binds: { [CHECKOUT]: SRC },
          logFile: join(logs, `${name}.log`),
        }),
      );
    }),
  );
  const cp = await install('cp', ['--role', 'controlplane']);
  expect(cp.exitCode, cp.explain).toBe(0);
  await g('cp').exec(['weft', 'apply', '-f', '-'], { input: SERVICES });
  const cpAddress = `${lab.host('cp').address}:15012`;
  for (const [node, extra] of [
    ['node1', ['--workload', 'echo:7000:weftapp']],
    ['node2', []],
  ] as const) {
    const scope = node === 'node1' ? ['--services', 'echo'] : [];
    const out = (
      await g('cp').exec(['weft', 'token', 'create', '--node', node, ...scope, '--ttl', '1h'])
    ).stdout;
    const token = /^token:\s+(\S+)/m.exec(out)![1]!;
    const pin = /^CA pin:\s+(\S+)/m.exec(out)![1]!;
    await g(node).exec(['useradd', '--system', 'weftapp']);
    const r = await install(
      node,
      [
        '--control-plane',
        cpAddress,
        '--token-file',
        '-',
        '--ca-pin',
        pin,
        '--hostname',
        node,
        '--dns',
        ...extra,
      ],
      `${token}\n`,
    );
    expect(r.exitCode, r.explain).toBe(0);
  }
  await g('node1').exec(['systemd-run', '--unit=demo-echo', '--uid=weftapp', NODE, ECHO, '7000']);
  await until('echo.mesh answers on node2', async () => {
    const r = await load(1, 1, 0);
    return r.failed === 0 && r.ok > 0;
  });
}, 900_000);

afterAll(async () => {
  await Promise.all([...guests.values()].map((guest) => guest.stop().catch(() => undefined)));
  await lab?.down();
}, 120_000);

describe('reloads and upgrades that cut no connection', () => {
  it('connections held open survive reloads on both ends and an upgrade; new ones all succeed', async () => {
    // Both hosts run one worker per CPU: a master and its workers.
    expect((await workers('node2')).length).toBeGreaterThanOrEqual(1);
    // 3 connections held for 40 s each (a line every 100 ms), and 4 loops of new connections.
    const held = load(45, 3, 40_000);
    const fresh = load(45, 4, 0);
    await sleep(3_000);
    await reload('node2', () => g('node2').exec(['systemctl', 'reload', 'weft-agent']));
    await reload('node1', () => g('node1').exec(['systemctl', 'reload', 'weft-agent']));
    await reload('node2', async () => {
      const r = await install('node2', []);
      expect(r.exitCode, r.explain).toBe(0);
      expect(r.stdout).toContain('upgrading: reloading weft-agent');
    });
    // The old workers still hold the connections opened before the reloads.
    const ws = await workers('node2');
    expect(ws.some((w) => w.state === 'retiring' && w.connections > 0)).toBe(true);
    const [h, f] = await Promise.all([held, fresh]);
    console.log(
      `across reloads and an upgrade: held ${JSON.stringify(h)} new ${JSON.stringify(f)}`,
    );
    expect(h.errors).toEqual([]);
    expect(h.failed).toBe(0);
    expect(h.maxMs).toBeGreaterThanOrEqual(40_000);
    expect(f.errors).toEqual([]);
    expect(f.ok).toBeGreaterThan(50);
    // Their connections closed, the old workers are gone: one generation left.
    await until('only the newest workers left on node2', async () => {
      const now = await workers('node2');
      return now.every((w) => w.generation === newest(now));
    });
  }, 240_000);

  it('systemctl stop drains and exits within its limit; connections made meanwhile queue and are served after start', async () => {
    const held = load(8, 2, 3_000);
    await sleep(1_000);
    const started = Date.now();
    await g('node1').exec(['systemctl', 'stop', 'weft-agent']);
    const stopSeconds = (Date.now() - started) / 1000;
    // drainMs (10 s) + the workers' 5 s grace is within TimeoutStopSec (40 s).
    expect(stopSeconds).toBeLessThan(16);
    // A connection to the stopped agent's inbound tunnel socket queues (the socket unit holds it).
    const queued = load(3, 1, 0);
    await sleep(1_000);
    await g('node1').exec(['systemctl', 'start', 'weft-agent']);
    const [h, q] = await Promise.all([held, queued]);
    console.log(`stop: ${stopSeconds} s; held ${JSON.stringify(h)}; queued ${JSON.stringify(q)}`);
    expect(h.failed).toBe(0);
    expect(q.failed).toBe(0);
    expect(q.ok).toBeGreaterThan(0);
  }, 120_000);
});
