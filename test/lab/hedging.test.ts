// Hedging in lab hosts, with curl through the mesh: node2's `hedgy` answers after 8 s, node3's
// at once; an HTTPRoute rule hedges after 50 ms. Every GET from node1 gets node3's answer: a
// first try that went to node2 is hedged to node3, and node2's app sees that request abandoned
// (the cancel crosses the tunnel as RST_STREAM and the agent there drops the app's request).
// Each hedge is counted by node1's agent.
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

const hedgy = (n: string, mode: 'ok' | 'slow'): MeshLabWorkload => ({
  service: 'hedgy',
  name: `hedgy-${n}`,
  port: 8080,
  command: [node, fixture('flaky-http-retries.mjs'), '8080', mode],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: hedgy }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: hedgy-policy }
spec:
  targetRef: { name: hedgy }
  # Round robin: node2 gets every other first try, whatever its latency looks like.
  balancer: { type: roundRobin }
---
apiVersion: weft/v1
kind: HTTPRoute
metadata: { name: hedgy-route }
spec:
  parentRefs: [{ name: hedgy }]
  rules:
    - hedging: { delay: 50ms }
`;

const WON = /^weft_http_hedges_total\{dst_service="hedgy",route="hedgy-route",outcome="won"\}/;

let mesh: MeshLab;
let dir: string;

const curl = async (...args: string[]) => {
  const r = await mesh.lab.exec('node1', ['curl', '-s', '--max-time', '20', ...args], {
    user: 'weftapp',
    allowFailure: true,
  });
  return { code: r.exitCode, out: r.stdout };
};

/** A counter of a host's hedgy app (asked on that host, outside the mesh). */
async function appCount(host: string, what: 'count' | 'aborted'): Promise<number> {
  const r = await mesh.lab.exec(host, ['curl', '-s', `http://127.0.0.1:8080/${what}`]);
  return Number(r.stdout.trim());
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-hedging-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `hg${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [hedgy('node2', 'slow')] },
      { name: 'node3', workloads: [hedgy('node3', 'ok')] },
    ],
    resourceFiles: [resources],
  });
  // Until node1's agent has the route and both endpoints, a request may wait for node2: wait
  // until a hedge has won once.
  await waitFor(
    'a hedge won through the mesh',
    async () => {
      await curl('http://hedgy.mesh/warm');
      return (await labMetric(mesh.lab, 'node1', WON)) > 0;
    },
    90_000,
  );
}, 180_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('hedging through the mesh', () => {
  it("curl gets node3's answer every time; node2's slow tries are hedged and abandoned", async () => {
    const seenBefore = await appCount('node2', 'count');
    const abortedBefore = await appCount('node2', 'aborted');
    const wonBefore = await labMetric(mesh.lab, 'node1', WON);
    const urls = Array.from({ length: 20 }, (_, i) => `http://hedgy.mesh/h${i}`);
    const r = await curl('-w', 'status=%{http_code}\n', ...urls);
    expect(r.code).toBe(0);
    const statuses = r.out.split('\n').filter((l) => l.startsWith('status='));
    expect(statuses, r.out).toEqual(Array(20).fill('status=200'));
    expect(r.out.match(/ok from node3/g)).toHaveLength(20);
    // Round robin sent some first tries to node2; each was hedged, and abandoned there.
    const slow = (await appCount('node2', 'count')) - seenBefore;
    expect(slow).toBeGreaterThan(0);
    expect((await labMetric(mesh.lab, 'node1', WON)) - wonBefore).toBe(slow);
    await waitFor(
      "node2's app to see its requests abandoned",
      async () => (await appCount('node2', 'aborted')) - abortedBefore === slow,
    );
  });
});
