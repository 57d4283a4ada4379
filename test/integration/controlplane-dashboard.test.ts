// The web dashboard on a real control plane: nothing but the login page without a session, a
// login link works once and only from the dashboard's own origin, a session sees the registry
// as JSON, logging out needs the session's CSRF token, and only an admin can make a link.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftAdminClient } from '../../src/api/admin-client.js';
import { CONTROL_PLANE_CHANNEL_OPTIONS, loadProto, unary } from '../../src/api/proto.js';
import { controlPlaneCredentials } from '../../src/api/tls.js';
import type { Overview } from '../../src/dashboard-ui/overview-types.js';
import {
  joinNode,
  type NodeCredentials,
  nodeClients,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const form = (fields: Record<string, string>) => ({
  'content-type': 'application/x-www-form-urlencoded',
  body: new URLSearchParams(fields).toString(),
});

function sessionCookie(answer: Answer): string {
  const set = answer.headers['set-cookie'];
  const cookie = (Array.isArray(set) ? set[0] : set) ?? '';
  expect(cookie).toMatch(/^weft_session=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=\/;/);
  return cookie.split(';')[0] as string;
}

let cp: TestControlPlane;
let admin: WeftAdminClient;
let node: NodeCredentials;

async function login(): Promise<string> {
  const { token } = await admin.createDashboardLogin();
  const { body, ...headers } = form({ token });
  const answer = await http(`${cp.httpUrl}/login`, {
    method: 'POST',
    headers: { ...headers, origin: cp.httpUrl },
    body,
  });
  expect(answer.status).toBe(303);
  expect(answer.headers.location).toBe('/');
  return sessionCookie(answer);
}

beforeAll(async () => {
  cp = await startControlPlane();
  admin = WeftAdminClient.open({ server: cp.grpcAddress, credentialsDir: cp.adminCredentials.dir });
  const doc = {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name: 'echo' },
    spec: { ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] },
  };
  await admin.apply(
    [{ kind: 'Service', name: 'echo', json: JSON.stringify(doc), revision: 0 }],
    'test',
  );
  node = await joinNode(cp, 'node1', { services: ['echo'] });
  const c = nodeClients(cp, node);
  await unary(c.identity, c.identity.registerWorkloads, {
    workloads: [{ service: 'echo', port: 8080, health: 'healthy' }],
  });
  c.close();
});

afterAll(async () => {
  admin?.close();
  await cp?.stop({ removeDataDir: true });
});

describe('the dashboard without a session', () => {
  it('sends the page to the login page and refuses the API', async () => {
    const page = await http(`${cp.httpUrl}/`);
    expect(page.status).toBe(303);
    expect(page.headers.location).toBe('/login');
    const api = await http(`${cp.httpUrl}/api/v1/overview`);
    expect(api.status).toBe(401);
    expect(api.body).not.toContain('echo');
    const forged = await http(`${cp.httpUrl}/api/v1/overview`, {
      headers: { cookie: 'weft_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    });
    expect(forged.status).toBe(401);
  });

  it('serves the login page with headers that forbid framing and foreign scripts', async () => {
    const page = await http(`${cp.httpUrl}/login`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<form method="post" action="/login"');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
  });

  it('still serves /healthz and /metrics as before', async () => {
    expect((await http(`${cp.httpUrl}/healthz`)).status).toBe(200);
    expect((await http(`${cp.httpUrl}/metrics`)).body).toContain('# HELP');
  });
});

describe('logging in', () => {
  it('a link works once', async () => {
    const { token, httpPort } = await admin.createDashboardLogin();
    expect(`http://127.0.0.1:${httpPort}`).toBe(cp.httpUrl);
    const { body, ...headers } = form({ token });
    const first = await http(`${cp.httpUrl}/login`, { method: 'POST', headers, body });
    expect(first.status).toBe(303);
    sessionCookie(first);
    const again = await http(`${cp.httpUrl}/login`, { method: 'POST', headers, body });
    expect(again.status).toBe(401);
    expect(again.headers['set-cookie']).toBeUndefined();
    expect(again.body).toContain('weft dashboard');
  });

  it('a login posted from another site is refused and does not use up the link', async () => {
    const { token } = await admin.createDashboardLogin();
    const { body, ...headers } = form({ token });
    const foreign = await http(`${cp.httpUrl}/login`, {
      method: 'POST',
      headers: { ...headers, origin: 'http://evil.example' },
      body,
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers['set-cookie']).toBeUndefined();
    const own = await http(`${cp.httpUrl}/login`, {
      method: 'POST',
      headers: { ...headers, origin: cp.httpUrl },
      body,
    });
    expect(own.status).toBe(303);
  });

  it('only an admin certificate can make a link', async () => {
    const { Admin } = loadProto();
    const asNode = new Admin(
      cp.grpcAddress,
      controlPlaneCredentials(
        { caPem: cp.trustBundlePem, keyPem: node.keyPem, certPem: node.certificatePem },
        cp.trustDomain,
      ),
      CONTROL_PLANE_CHANNEL_OPTIONS,
    );
    try {
      await expect(unary(asNode, asNode.createDashboardLogin, {})).rejects.toThrow(/admin/i);
    } finally {
      asNode.close();
    }
  });
});

describe('a session', () => {
  it('gets the page and the registry as JSON', async () => {
    const cookie = await login();
    const page = await http(`${cp.httpUrl}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/<meta name="weft-csrf" content="[A-Za-z0-9_-]{43}">/);
    const script = await http(`${cp.httpUrl}/assets/app.js`, { headers: { cookie } });
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toContain('text/javascript');
    const api = await http(`${cp.httpUrl}/api/v1/overview`, { headers: { cookie } });
    expect(api.status).toBe(200);
    const overview = JSON.parse(api.body) as Overview;
    const echo = overview.services.find((s) => s.name === 'echo');
    expect(echo?.vip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(echo?.endpoints.map((e) => [e.node, e.port, e.health])).toEqual([
      ['node1', 8080, 'healthy'],
    ]);
    expect(echo?.ready).toBe(1);
    expect(overview.nodes.map((n) => n.name)).toEqual(['node1']);
  });

  it('cannot fetch files outside the dashboard scripts', async () => {
    const cookie = await login();
    for (const path of [
      '/assets/../../package.json',
      '/assets/overview-types.js.map',
      '/assets/x.js',
    ]) {
      const answer = await http(`${cp.httpUrl}${path}`, { headers: { cookie } });
      expect(answer.status).toBe(404);
    }
  });

  it('logs out only with its CSRF token, and is gone afterwards', async () => {
    const cookie = await login();
    const page = await http(`${cp.httpUrl}/`, { headers: { cookie } });
    const csrf = /name="weft-csrf" content="([^"]+)"/.exec(page.body)?.[1] as string;
    const without = form({ csrf: 'wrong' });
    const refused = await http(`${cp.httpUrl}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': without['content-type'] },
      body: without.body,
    });
    expect(refused.status).toBe(403);
    expect((await http(`${cp.httpUrl}/api/v1/overview`, { headers: { cookie } })).status).toBe(200);
    const right = form({ csrf });
    const out = await http(`${cp.httpUrl}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': right['content-type'], origin: cp.httpUrl },
      body: right.body,
    });
    expect(out.status).toBe(303);
    expect((await http(`${cp.httpUrl}/api/v1/overview`, { headers: { cookie } })).status).toBe(401);
  });
});
