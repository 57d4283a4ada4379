// The dashboard in a real browser against a real control plane: the link `weft dashboard`
// prints logs in, the page draws the registry (services, endpoints, nodes, policies) and the
// graph, and keeps no token in the address bar. Screenshots in test-artifacts/dashboard/.

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { unary } from '../../src/api/proto.js';
import { dashboardUrl } from '../../src/cli/commands/dashboard.js';
import { artifactPath, launchChromium } from '../helpers/browser.js';
import {
  joinNode,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;
let admin: WeftAdminClient;
let browser: Browser;

const resource = (kind: string, name: string, spec: unknown) => ({
  kind,
  name,
  json: JSON.stringify({ apiVersion: 'weft/v1', kind, metadata: { name }, spec }),
  revision: 0,
});

beforeAll(async () => {
  browser = await launchChromium();
  cp = await startControlPlane();
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  await admin.apply(
    [
      resource('Service', 'echo', { ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] }),
      resource('Service', 'web', { ports: [{ port: 80, targetPort: 8081, protocol: 'http' }] }),
      resource('AuthorizationPolicy', 'echo-from-web', {
        targetRef: { kind: 'Service', name: 'echo' },
        rules: [{ from: [{ principals: [`spiffe://${cp.trustDomain}/svc/web`] }] }],
      }),
    ],
    'test',
  );
  for (const [name, services] of [
    ['node1', ['echo']],
    ['node2', ['echo', 'web']],
  ] as const) {
    const node = await joinNode(cp, name, { services: [...services] });
    const c = nodeClients(cp, node);
    await unary(c.identity, c.identity.registerWorkloads, {
      workloads: services.map((service, i) => ({
        service,
        port: 8080 + i,
        health: 'healthy' as const,
      })),
    });
    c.close();
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  admin?.close();
  await cp?.stop({ removeDataDir: true });
});

describe('the dashboard in Chromium', () => {
  it('logs in with the printed link and draws the registry', async () => {
    const { token, httpPort } = await admin.createDashboardLogin();
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(msg.text());
    });
    await page.goto(dashboardUrl(cp.grpcAddress, httpPort, token));
    await page.waitForURL(`${cp.httpUrl}/`);
    expect(page.url()).not.toContain(token);

    const echo = page.locator('#services tr[data-service="echo"]');
    await echo.waitFor();
    await expect
      .poll(async () => echo.locator('.pill.healthy').allTextContents())
      .toEqual(['node1', 'node2']);
    expect(await page.locator('#nodes tr[data-node]').allTextContents()).toHaveLength(2);
    expect(await page.locator('#policies').textContent()).toContain('echo-from-web');
    expect(await page.locator('#graph g.node[data-service]').count()).toBe(2);
    expect(await page.locator('#tiles').textContent()).toContain('3/3');
    await page.screenshot({ path: artifactPath('dashboard', 'registry'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a used link shows the login page again with what to do', async () => {
    const { token, httpPort } = await admin.createDashboardLogin();
    const page = await browser.newPage();
    await page.goto(dashboardUrl(cp.grpcAddress, httpPort, token));
    await page.waitForURL(`${cp.httpUrl}/`);
    const second = await browser.newPage();
    await second.goto(dashboardUrl(cp.grpcAddress, httpPort, token));
    await second.locator('[role="alert"]').waitFor();
    expect(await second.locator('[role="alert"]').textContent()).toContain('weft dashboard');
    await page.close();
    await second.close();
  });
});
