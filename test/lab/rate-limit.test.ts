// TrafficPolicy.rateLimit across hosts, with curl through the mesh: node1 calls `web`, served
// by node2, whose agent holds the service's token bucket. Beyond it curl gets 429 with
// retry-after (the seconds until the next token), the receiving agent counts it, and the
// calling agent passes it on as the answer it is (no failover, no ejection: 429 is not a 5xx).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshLab } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

// Three requests, then one token per hour: the fourth and later are refused for about an hour.
const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: { name: web-limit }
spec:
  targetRef: { name: web }
  rateLimit: { maxTokens: 3, tokensPerFill: 1, fillInterval: 1h }
`;

let mesh: MeshLab;
let dir: string;

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-rl-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `rl${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1' },
      {
        name: 'node2',
        workloads: [
          {
            service: 'web',
            port: 8080,
            command: [process.execPath, fixture('l7-app.mjs'), '8080'],
          },
        ],
      },
    ],
    resourceFiles: [resources],
  });
}, 120_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('rate limit across hosts', () => {
  it('curl gets 429 with retry-after beyond the bucket; the receiving agent counts it', async () => {
    const curl = async () => {
      const r = await mesh.lab.exec(
        'node1',
        [
          'curl',
          '-s',
          '--max-time',
          '10',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %header{retry-after} %header{weft-reason}\n',
          'http://web.mesh/',
        ],
        { user: 'weftapp', allowFailure: true },
      );
      const [code, retryAfter, reason] = r.stdout.trim().split(' ');
      return {
        code: Number(code),
        retryAfter: retryAfter === undefined ? NaN : Number(retryAfter),
        reason,
      };
    };
    // The first answer marks the mesh ready (node1 knows web and node2 serves it); the bucket
    // counts every request that reached node2's agent, this one included.
    const answers = [
      await waitFor(
        'web to answer through the mesh',
        async () => {
          const r = await curl();
          return r.code === 200 || r.code === 429 ? r : undefined;
        },
        40_000,
      ),
    ];
    for (let i = 0; i < 4; i++) answers.push(await curl());
    expect(answers.map((a) => a.code)).toEqual([200, 200, 200, 429, 429]);
    for (const refused of answers.slice(3)) {
      expect(refused.retryAfter).toBeGreaterThan(3_500);
      expect(refused.retryAfter).toBeLessThanOrEqual(3_600);
      expect(refused.reason).toBe('rate_limited');
    }
    expect(
      await labMetric(mesh.lab, 'node2', /^weft_rate_limited_total\{dst_service="web"\}/),
    ).toBe(2);
    // The caller's agent saw the 429s as answers: counted as such, the endpoint kept.
    expect(
      await labMetric(
        mesh.lab,
        'node1',
        /^weft_http_requests_total\{direction="outbound",[^}]*dst_service="web",[^}]*status_code="429"/,
      ),
    ).toBe(2);
    expect(
      await labMetric(
        mesh.lab,
        'node1',
        /^weft_balancer_endpoints\{service="web",port="80",state="ejected"\}/,
      ),
    ).toBe(0);
  });
});
