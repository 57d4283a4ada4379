// Retries in lab hosts, with curl through the mesh: node2's `flaky` answers 503 to everything,
// node3's answers 200; with TrafficPolicy retries on 5xx, every request from node1 succeeds:
// a try that node2 fails is retried on node3 (another host), and node1's agent counts it.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const node = process.execPath;

const flaky = (n: string, mode: 'ok' | 'fail'): MeshLabWorkload => ({
  service: 'flaky',
  name: `flaky-${n}`,
  port: 8080,
  command: [node, fixture('flaky-http-retries.mjs'), '8080', mode],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: flaky }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: flaky-retries }
spec:
  targetRef: { name: flaky }
  # Round robin: node2 gets every other first try, whatever its latency looks like. The
  # budget is generous: the warm-up below may spend retries while only node2 is registered.
  balancer: { type: roundRobin }
  retries:
    attempts: 2
    on: [5xx]
    backoff: { base: 5ms, max: 20ms }
    budget: { percent: 100, minPerSecond: 1000 }
  # Outlier detection counts each 503 against node2 and would eject it after five in a row (its
  # defaults), so that no try would go there: this test is about the retries, so none is ejected.
  outlierDetection: { maxEjectionPercent: 0 }
`;

let mesh: MeshLab;
let dir: string;

const curl = async (...args: string[]) => {
  const r = await mesh.lab.exec('node1', ['curl', '-s', '--max-time', '10', ...args], {
    user: 'weftapp',
    allowFailure: true,
  });
  return { code: r.exitCode, out: r.stdout };
};

/** How many requests a host's flaky app has seen (asked on that host, outside the mesh). */
async function seenOn(host: string): Promise<number> {
  const r = await mesh.lab.exec(host, ['curl', '-s', 'http://127.0.0.1:8080/count']);
  return Number(r.stdout.trim());
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-retries-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `rt${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [flaky('node2', 'fail')] },
      { name: 'node3', workloads: [flaky('node3', 'ok')] },
    ],
    resourceFiles: [resources],
  });
  // Until node1's agent has the TrafficPolicy and node3's workload, node2's 503s reach curl:
  // wait for ten in a row that all succeed (node2 gets half of them first: the policy at work).
  const warm = Array.from({ length: 10 }, () => 'http://flaky.mesh/warm');
  await waitFor(
    'flaky to answer through the mesh with retries on',
    async () => (await curl(...warm)).out.match(/ok from node3/g)?.length === 10,
    40_000,
  );
}, 120_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('retries through the mesh', () => {
  it('curl gets 200 every time: tries that node2 fails are retried on node3', async () => {
    const pattern =
      /^weft_http_retries_total\{dst_service="flaky",route="default",reason="http_status"\}/;
    const failedBefore = await seenOn('node2');
    const retriesBefore = await labMetric(mesh.lab, 'node1', pattern);
    const urls = Array.from({ length: 30 }, (_, i) => `http://flaky.mesh/r${i}`);
    const r = await curl('-w', 'status=%{http_code}\n', ...urls);
    expect(r.code).toBe(0);
    const statuses = r.out.split('\n').filter((l) => l.startsWith('status='));
    expect(statuses, r.out).toEqual(Array(30).fill('status=200'));
    expect(r.out.match(/ok from node3/g)).toHaveLength(30);
    // node2 was tried (and failed) for some of them; node1's agent counted each retry.
    const failed = (await seenOn('node2')) - failedBefore;
    expect(failed).toBeGreaterThan(0);
    const retries = (await labMetric(mesh.lab, 'node1', pattern)) - retriesBefore;
    expect(retries).toBe(failed);
  });
});
