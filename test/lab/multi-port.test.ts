// A Service with two ports in lab hosts, with real servers: `nginx` 80->8080 (an HTTP/1.1
// listener) and 81->8081 (an h2c listener), one workload registration per target port. Each
// service port reaches only the workloads on its targetPort; a port the service does not
// declare is reset and counted under the service; a port with no workload is answered 503 by
// the agent (these ports are HTTP); a CONNECT through the tunnel must name one of the
// receiving host's registered workload addresses and ports.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointsView } from '../../src/agent/admin-views.js';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { labMetric } from '../helpers/metrics-text.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const CLIENT = fixture('mesh-client.mjs');

const listener = (mode: 'http1' | 'h2c', port: number): MeshLabWorkload => ({
  service: 'nginx',
  name: `nginx-${mode}`,
  port,
  command: [process.execPath, fixture('http-port-server.mjs'), mode, String(port)],
});
const HTTP1 = listener('http1', 8080);
const H2C = listener('h2c', 8081);

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: nginx }
spec:
  ports:
    - { name: web, port: 80, targetPort: 8080, protocol: http }
    - { name: web2, port: 81, targetPort: 8081, protocol: http2 }
`;
const ROUNDS = 12;
const HTTP1_ANSWER = 'http1 on node2:8080 HTTP/1.1';
const H2C_ANSWER = 'h2c on node2:8081 HTTP/2.0';

let mesh: MeshLab;
let dir: string;

interface Answer {
  /** curl's exit code. */
  code: number;
  /** The HTTP status (0 when there was no response). */
  status: number;
  /** The response's weft-reason: set when the agent answered itself. */
  reason: string;
  body: string;
}

/** curl from node1 as an application user: exit code, status, weft-reason and body. */
async function curl(url: string, ...flags: string[]): Promise<Answer> {
  const r = await mesh.lab.exec(
    'node1',
    [
      'curl',
      '-s',
      '--max-time',
      '5',
      '-w',
      '\\n%{http_code}\\n%header{weft-reason}',
      ...flags,
      url,
    ],
    { user: 'weftapp', allowFailure: true },
  );
  // -w appends two lines after the body: the status and the weft-reason header.
  const lines = r.stdout.split('\n');
  const reason = lines.pop() ?? '';
  const status = Number(lines.pop() ?? 0);
  return { code: r.exitCode, status, reason, body: lines.join('\n').trim() };
}
const h2c = (url: string) => curl(url, '--http2-prior-knowledge');
/** What a caller sees of one call: the app's answer (200) by its body, else how it failed. */
const seenOf = (a: Answer) =>
  a.code !== 0
    ? `curl exit ${a.code}`
    : a.status === 200
      ? a.body
      : `${a.status} ${a.reason}: ${a.body}`;

/** The answers of `rounds` calls, counted by what the caller saw. */
async function answers(call: () => Promise<Answer>, rounds = ROUNDS) {
  const seen: Record<string, number> = {};
  for (let i = 0; i < rounds; i++) {
    const key = seenOf(await call());
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

const metric = (host: string, pattern: RegExp) => labMetric(mesh.lab, host, pattern);

/** The agent's access-log lines (JSON) on a host. */
function accessLog(host: string): Array<Record<string, unknown>> {
  const text = readFileSync(join(mesh.lab.dir, `${host}.agent.log`), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'connection');
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-ports-'));
  chmodSync(dir, 0o755);
  const services = join(dir, 'services.yaml');
  writeFileSync(services, RESOURCES);
  mesh = await MeshLab.up({
    name: `ports${randomBytes(2).toString('hex')}`,
    nodes: [{ name: 'node1' }, { name: 'node2', workloads: [HTTP1] }],
    resourceFiles: [services],
  });
  // The app's own answer, not the agent's 503 while node2 has not joined yet (curl exits 0 on
  // both). It also means node2's agent is up, with its signal handlers (SIGHUP below).
  await waitFor(
    'nginx:80 to answer from the 8080 workload',
    async () => seenOf(await curl('http://nginx.mesh/')) === HTTP1_ANSWER,
    30_000,
  );
});

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a service with two ports', () => {
  it('with only the 8080 workload: port 80 reaches it every time, port 81 reaches nothing', async () => {
    expect(await answers(() => curl('http://nginx.mesh/'))).toEqual({
      [HTTP1_ANSWER]: ROUNDS,
    });
    // Port 81's targetPort is 8081, where nothing is registered yet: the agent answers every
    // request itself, 503 naming the service port, and none lands on the HTTP/1.1 listener.
    const noEndpoint =
      /^weft_http_requests_total\{direction="outbound",[^}]*dst_service="nginx",[^}]*status_code="503",/;
    const before = await metric('node1', noEndpoint);
    expect(await answers(() => h2c('http://nginx.mesh:81/'))).toEqual({
      '503 no_healthy_endpoint: weft: no usable endpoint of nginx:81': ROUNDS,
    });
    expect((await metric('node1', noEndpoint)) - before).toBe(ROUNDS);
  });

  it('once an h2c workload on 8081 is registered, each port reaches only its own listener', async () => {
    // Register the second listener as an operator would: agent.yaml gets a workload of the
    // same service on the other port, the agent re-reads it on SIGHUP.
    const file = mesh.configFile('node2');
    const config = JSON.parse(readFileSync(file, 'utf8')) as { workloads: unknown[] };
    config.workloads.push({
      service: 'nginx',
      port: 8081,
      user: 'weftapp',
      health: { intervalMs: 1_000 },
    });
    writeFileSync(file, JSON.stringify(config, null, 2));
    await mesh.lab.startProcess('node2', {
      name: H2C.name!,
      command: H2C.command,
      user: 'weftapp',
    });
    // The agent checks a new workload at once: reload only once the server listens.
    await waitFor(
      'the h2c server to listen on node2:8081',
      async () => (await mesh.lab.exec('node2', ['ss', '-Htln', 'sport = :8081'])).stdout !== '',
    );
    const agent = mesh.lab.processes().find((p) => p.host === 'node2' && p.name === 'agent');
    process.kill(agent!.pid, 'SIGHUP');
    // Not the first answer: a new workload is usable at once ("unknown"), and the health its
    // agent reports next may still be from a check made before the listener was up. Wait for
    // the caller's view of it to say healthy, as its agent reports it.
    await waitFor(
      "node1's view of the 8081 workload: healthy",
      async () => {
        const r = await mesh.lab.exec('node1', ['curl', '-s', 'http://127.0.0.1:15000/endpoints'], {
          allowFailure: true,
        });
        if (r.exitCode !== 0) return false;
        const view = JSON.parse(r.stdout) as EndpointsView;
        return view.services.nginx?.endpoints.some(
          (e) => e.port === 8081 && e.health === 'healthy',
        );
      },
      30_000,
    );

    expect(await answers(() => curl('http://nginx.mesh/'))).toEqual({
      [HTTP1_ANSWER]: ROUNDS,
    });
    expect(await answers(() => h2c('http://nginx.mesh:81/'))).toEqual({
      [H2C_ANSWER]: ROUNDS,
    });
  });

  it('a connection to an endpoint address directly keeps reaching that endpoint', async () => {
    const node2 = mesh.lab.host('node2').address;
    expect(await answers(() => curl(`http://${node2}:8080/`), 4)).toEqual({
      [HTTP1_ANSWER]: 4,
    });
    expect(await answers(() => h2c(`http://${node2}:8081/`), 4)).toEqual({
      [H2C_ANSWER]: 4,
    });
    expect(
      await metric(
        'node1',
        /^weft_tcp_open_total\{direction="outbound",[^}]*dst_service="nginx"\}/,
      ),
    ).toBeGreaterThan(0);
  });

  it('a port the service does not declare is reset, counted under the service as no_such_port, and logged', async () => {
    const noPort =
      /^weft_tcp_close_total\{direction="outbound",[^}]*dst_service="nginx",reason="no_such_port"\}/;
    const before = await metric('node1', noPort);
    expect((await curl('http://nginx.mesh:82/')).code).not.toBe(0);
    expect((await metric('node1', noPort)) - before).toBe(1);
    await waitFor(
      'the access-log line of the refused connection',
      async () => accessLog('node1').some((l) => l.close_reason === 'no_such_port'),
      10_000,
    );
    const line = accessLog('node1').find((l) => l.close_reason === 'no_such_port')!;
    expect(line).toMatchObject({ dst_service: 'nginx', direction: 'outbound' });
    expect(String(line.dst)).toMatch(/:82$/);
    expect(String(line.error)).toMatch(/nginx has no port 82/);
  });

  it("a CONNECT through the tunnel must name one of the host's workload addresses and ports", async () => {
    const node2 = mesh.lab.host('node2').address;
    const own = join(mesh.lab.dir, 'node1', 'node.pem');
    const probe = async (target: string) => {
      const r = await mesh.lab.exec('node1', [
        process.execPath,
        CLIENT,
        'connect-probe',
        node2,
        '15008',
        own,
        target,
      ]);
      return JSON.parse(r.stdout) as { result: string; status?: number; reason?: string };
    };
    const denied =
      /^weft_authz_decisions_total\{direction="inbound",dst_service="unknown",decision="deny"\}/;
    const before = await metric('node2', denied);
    // The workload's port on loopback: a local address and a workload's port, but not the
    // address it is registered at.
    const loopback = await probe('127.0.0.1:8080');
    expect(loopback).toMatchObject({ result: 'accepted', status: 403 });
    expect(loopback.reason).toMatch(/127\.0\.0\.1:8080 is not a workload of this host/);
    expect((await metric('node2', denied)) - before).toBe(1);
    // Control: the registered address and port.
    expect(await probe(`${node2}:8080`)).toEqual({ result: 'accepted', status: 200 });
  });
});
