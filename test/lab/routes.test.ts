// HTTPRoute in lab hosts with real clients: curl's header and path matches land on the canary
// Service, and a 90/10 canary split of 10,000 requests (h2load) lands within 2 points, counted
// by the receiving agents. node1 calls; node2 and node3 serve `web` (8080); node2 also serves
// `web-v2` (8081), the canary.
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

const app = (service: string, n: string, port: number): MeshLabWorkload => ({
  service,
  name: `${service}-${n}`,
  port,
  command: [node, fixture('l7-app.mjs'), String(port)],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: Service
metadata: { name: web-v2 }
spec:
  ports: [{ port: 80, targetPort: 8081, protocol: http }]
---
apiVersion: weft/v1
kind: HTTPRoute
metadata: { name: web-canary }
spec:
  parentRefs: [{ name: web }]
  rules:
    - matches: [{ headers: [{ name: x-canary, value: "1" }] }]
      backendRefs: [{ name: web-v2 }]
    - matches: [{ path: { type: PathPrefix, value: /v2 } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }
      backendRefs: [{ name: web-v2 }]
    - backendRefs: [{ name: web, weight: 90 }, { name: web-v2, weight: 10 }]
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

/** Requests the receiving agents served for a service (inbound), over both serving hosts. */
const served = async (service: string) => {
  const pattern = new RegExp(
    `^weft_http_requests_total\\{direction="inbound",[^}]*dst_service="${service}"`,
  );
  return (
    (await labMetric(mesh.lab, 'node2', pattern)) + (await labMetric(mesh.lab, 'node3', pattern))
  );
};

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv', 'h2load']);
  dir = mkdtempSync(join(tmpdir(), 'weft-routes-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `rt${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [app('web', 'node2', 8080), app('web-v2', 'node2', 8081)] },
      { name: 'node3', workloads: [app('web', 'node3', 8080)] },
    ],
    resourceFiles: [resources],
  });
  await waitFor(
    'web on node2 and node3, and web-v2, to answer',
    async () => {
      const canary = await curl('-H', 'x-canary: 1', 'http://web.mesh/');
      const urls = Array.from({ length: 10 }, () => 'http://web.mesh/');
      const split = await curl(...urls);
      return (
        canary.out.includes('node2:8081') &&
        split.out.includes('node2:8080') &&
        split.out.includes('node3:8080')
      );
    },
    60_000,
  );
}, 120_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('HTTPRoute through the mesh', () => {
  it('a header match sends every request to the canary', async () => {
    const urls = Array.from({ length: 10 }, () => 'http://web.mesh/');
    const r = await curl('-H', 'x-canary: 1', ...urls);
    const answers = r.out.split('\n').filter((l) => l.startsWith('l7 on'));
    expect(answers).toHaveLength(10);
    expect(
      answers.every((a) => a.startsWith('l7 on node2:8081')),
      r.out,
    ).toBe(true);
  });

  it('a path match with a prefix rewrite reaches the canary at the rewritten path', async () => {
    const r = await curl('http://web.mesh/v2/headers');
    // l7-app answers /headers with the request's headers: the rewrite made /v2/headers that.
    const headers = JSON.parse(r.out) as Record<string, string>;
    expect(headers.host).toBe('web.mesh');
    const who = await curl('-D', '-', '-o', '/dev/null', 'http://web.mesh/v2/');
    expect(who.out).toMatch(/x-served-by: node2/i);
  });

  it('a 90/10 canary split of 10,000 requests lands within 2 points', async () => {
    const before = { v1: await served('web'), v2: await served('web-v2') };
    const r = await mesh.lab.exec(
      'node1',
      ['h2load', '-n', '10000', '-c', '4', '-m', '8', 'http://web.mesh/split'],
      // A shared, busy machine may take a while: the count, not the rate, is under test.
      { user: 'weftapp', allowFailure: true, timeoutMs: 150_000 },
    );
    expect(r.stdout, r.stdout).toMatch(/10000 succeeded/);
    const counted = await waitFor(
      'the 10,000 requests to be counted where they were served',
      async () => {
        const v1 = (await served('web')) - before.v1;
        const v2 = (await served('web-v2')) - before.v2;
        return v1 + v2 >= 10_000 ? { v1, v2 } : undefined;
      },
    );
    expect(counted.v1 + counted.v2).toBe(10_000);
    expect(Math.abs((counted.v2 / 10_000) * 100 - 10)).toBeLessThanOrEqual(2);
  }, 240_000);
});
