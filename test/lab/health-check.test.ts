// TrafficPolicy.healthCheck with http, end to end: each workload's own agent GETs /health;
// when node3's starts failing, node1's balancer takes node3's endpoint out (the result carried
// through the control plane) and every request goes to node2; when it passes again, node3 is
// back. Real agents, real iptables, curl through the mesh.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: web-health }
spec:
  targetRef: { name: web }
  healthCheck: { interval: 1s, timeout: 500ms, unhealthyThreshold: 2, healthyThreshold: 1, http: { path: /health } }
`;

let mesh: MeshLab;
let dir: string;
let failNode3: string;

const web = (host: string): MeshLabWorkload => ({
  service: 'web',
  port: 8080,
  command: [process.execPath, fixture('health-app.mjs'), '8080', join(dir, `fail-${host}`)],
});

async function answers(n: number): Promise<string[]> {
  const urls = Array.from({ length: n }, () => 'http://web.mesh/');
  const r = await mesh.lab.exec('node1', ['curl', '-s', '--max-time', '10', ...urls], {
    user: 'weftapp',
    allowFailure: true,
  });
  return r.stdout.split('\n').filter((l) => l !== '');
}

const unhealthyOnNode1 = () =>
  labMetric(
    mesh.lab,
    'node1',
    /^weft_balancer_endpoints\{service="web",port="80",state="unhealthy"\}/,
  );

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-hc-'));
  chmodSync(dir, 0o755);
  failNode3 = join(dir, 'fail-node3');
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `hc${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [web('node2')] },
      { name: 'node3', workloads: [web('node3')] },
    ],
    resourceFiles: [resources],
  });
  await waitFor(
    'web to answer from node2 and node3',
    async () => new Set(await answers(6)).size === 2,
    60_000,
  );
}, 150_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('an active HTTP health check', () => {
  it("takes an endpoint whose /health fails out of the caller's balancer, and back", async () => {
    writeFileSync(failNode3, '');
    await waitFor(
      "node1 to see node3's endpoint unhealthy",
      async () => (await unhealthyOnNode1()) === 1,
      30_000,
    );
    expect(await answers(12)).toEqual(Array(12).fill('up on node2'));
    unlinkSync(failNode3);
    await waitFor(
      "node1 to see node3's endpoint healthy",
      async () => (await unhealthyOnNode1()) === 0,
      30_000,
    );
    await waitFor(
      'node3 to answer again',
      async () => (await answers(6)).includes('up on node3'),
      20_000,
    );
  });
});
