// The dashboard against a lab with traffic, in a real Chromium: node1's `client` calls `echo`
// on node2 with curl, one of its requests is denied by an AuthorizationPolicy; the page the
// link from `weft dashboard` opens shows the edge client -> echo with a rate, the denial, a
// failed request, and the nodes' host facts. Screenshots (and `weft top --once`) in test-artifacts/dashboard/.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { ARTIFACTS_DIR, artifactPath, launchChromium } from '../helpers/browser.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

const app = (service: string, port: number): MeshLabWorkload => ({
  service,
  port,
  command: [process.execPath, fixture('l7-app.mjs'), String(port)],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: Service
metadata: { name: client }
spec:
  ports: [{ name: http, port: 80, targetPort: 9090, protocol: http }]
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: { name: echo-no-admin }
spec:
  targetRef: { kind: Service, name: echo }
  action: DENY
  rules: [{ to: [{ paths: ["/admin*"] }] }]
`;

let mesh: MeshLab;
let dir: string;
let browser: Browser;
let page: Page;

/** curl on node1 as the user of its `client` workload: the requests carry client's identity. */
const curl = (...args: string[]) =>
  mesh.lab.exec('node1', ['curl', '-s', '--max-time', '10', ...args], {
    user: 'weftapp',
    allowFailure: true,
  });

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-dash-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'resources.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `db${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1', workloads: [app('client', 9090)] },
      { name: 'node2', workloads: [app('echo', 8080)] },
    ],
    resourceFiles: [resources],
    agentConfig: { telemetry: { stats: { intervalMs: 1_000 } } },
  });
  await waitFor(
    'echo to answer client from node1',
    async () => (await curl('http://echo.mesh/')).stdout.includes('l7 on'),
    40_000,
  );
  browser = await launchChromium({ netns: mesh.lab.host('cp').netns });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard of a lab with traffic', () => {
  it('shows the edge client -> echo with a rate, and the denial of /admin', async () => {
    const ok = await curl('-w', '%{http_code}\n', ...Array(20).fill('http://echo.mesh/'));
    expect(ok.stdout.match(/^200$/gm)).toHaveLength(20);
    const denied = await curl('-w', '%{http_code}\n', 'http://echo.mesh/admin/users');
    expect(denied.stdout).toMatch(/^403$/m);
    const broken = await curl('-w', '%{http_code}\n', 'http://echo.mesh/status/502');
    expect(broken.stdout).toMatch(/^502$/m);

    const link = (await mesh.weft('cp', ['dashboard', ...mesh.adminArgs])).stdout.trim();
    expect(link).toMatch(/^http:\/\/127\.0\.0\.1:15014\/login#token=[A-Za-z0-9_-]+$/);
    page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(link);
    await page.waitForURL('http://127.0.0.1:15014/');

    // The page polls every 2 s; the agents report every second.
    const edge = page.locator('#graph g.edge[data-source="client"][data-destination="echo"]');
    await edge.waitFor({ timeout: 30_000 });
    const label = (await edge.locator('text').textContent()) ?? '';
    expect(label).toMatch(/^\d+(\.\d+)?(k)?\/s · \d+(\.\d+)?%$/);
    expect(label).not.toMatch(/^0\/s/);

    const echoRow = page.locator('#services tr[data-service="echo"]');
    // Its numbers come from node2's reports, the edge's from node1's: they may land in a later poll.
    await expect
      .poll(async () => echoRow.locator('td.num').first().textContent(), { timeout: 30_000 })
      .not.toBe('-');
    // The rate's trend since the page opened: a line with a point per poll.
    const line = echoRow.locator('svg.spark polyline');
    expect((await line.getAttribute('points'))?.split(' ').length).toBeGreaterThan(0);

    const denial = page.locator('#denials tr[data-destination="echo"]').first();
    await denial.waitFor({ timeout: 30_000 });
    const text = (await denial.textContent()) ?? '';
    expect(text).toContain('node2');
    expect(text).toContain('client');
    expect(text).toContain('GET /admin/users');
    expect(text).toContain('echo-no-admin');

    // The failed request, as node1's agent (the caller's) saw it.
    const error = page.locator('#errors tr[data-destination="echo"]', { hasText: '/status/502' });
    await error.first().waitFor({ timeout: 30_000 });
    const errorText = (await error.first().textContent()) ?? '';
    expect(errorText).toContain('node1');
    expect(errorText).toContain('client');
    expect(errorText).toContain('502');

    // Host facts from the agents' reports.
    await expect
      .poll(async () => page.locator('#nodes tr[data-node="node1"]').textContent())
      .toMatch(/GiB|MiB/);
    // Every table's rows have as many cells as its header names.
    for (const table of ['services', 'nodes', 'errors', 'denials', 'policies']) {
      const heads = await page.locator(`#${table} thead th`).count();
      const cells = await page.locator(`#${table} tbody tr`).first().locator('td').count();
      expect(`${table}: ${cells} cells`).toBe(`${table}: ${heads} cells`);
    }
    await page.screenshot({ path: artifactPath('dashboard', 'lab-overview'), fullPage: true });
    expect(problems).toEqual([]);
  });

  it('prints weft top for the same mesh', async () => {
    const top = (await mesh.weft('cp', ['top', '--once', ...mesh.adminArgs])).stdout;
    expect(top).toMatch(/^echo\s/m);
    writeFileSync(join(ARTIFACTS_DIR, 'dashboard', 'top.txt'), top);
  });
});
