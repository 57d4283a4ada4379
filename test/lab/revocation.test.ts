// A deleted node loses the mesh at once, end to end in lab hosts with real agents, tunnels and
// curl (issue 10, deliverable 3): after `weft delete node node1`, node2 refuses node1's tunnel
// within the one sync that carries the revocation, although node1 still holds certificates
// that are hours from expiry and still has node2's endpoint in its last snapshot.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigDumpView } from '../../src/agent/admin-views.js';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const demo = (name: string) =>
  fileURLToPath(new URL(`../../scripts/demo/${name}`, import.meta.url));

const http = (service: string): MeshLabWorkload => ({
  service,
  port: 8080,
  command: [process.execPath, demo('echo-server.mjs'), '8080'],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec: { ports: [{ port: 80, targetPort: 8080, protocol: http }] }
---
apiVersion: weft/v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 80, targetPort: 8080, protocol: http }] }
`;

let mesh: MeshLab;
let dir: string;

/** curl from node1 as the `web` workload's user (its identity: spiffe://weft.local/svc/web). */
async function curlEcho(): Promise<{ exit: number; status: number; reason: string; body: string }> {
  // The write-out goes to stderr (-s keeps curl's own messages off it): the body stays whole.
  const out = '%{stderr}%{http_code} %header{weft-reason}';
  const r = await mesh.lab.exec(
    'node1',
    ['curl', '-s', '--max-time', '5', '-w', out, 'http://echo.mesh/'],
    { user: 'weftapp', allowFailure: true },
  );
  const [status = '', ...reason] = r.stderr.split(' ');
  return {
    exit: r.exitCode,
    status: Number(status),
    reason: reason.join(' ').trim(),
    body: r.stdout,
  };
}

async function configDump(host: string): Promise<ConfigDumpView> {
  const r = await mesh.lab.exec(host, ['curl', '-s', 'http://127.0.0.1:15000/config_dump']);
  return JSON.parse(r.stdout) as ConfigDumpView;
}

/** node2's agent log lines (JSON), as an operator reads them in the journal. */
function agentLog(host: string): Array<Record<string, unknown>> {
  return readFileSync(join(mesh.lab.dir, `${host}.agent.log`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
  dir = mkdtempSync(join(tmpdir(), 'weft-revocation-'));
  chmodSync(dir, 0o755);
  const resources = join(dir, 'services.yaml');
  writeFileSync(resources, RESOURCES);
  mesh = await MeshLab.up({
    name: `rev${randomBytes(2).toString('hex')}`,
    nodes: [
      { name: 'node1', workloads: [http('web')] },
      { name: 'node2', workloads: [http('echo')] },
    ],
    resourceFiles: [resources],
  });
  await waitFor(
    'echo answering node1',
    async () => (await curlEcho()).body.includes('hello from node2'),
    30_000,
  );
});

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('weft delete node', () => {
  it("cuts the deleted node's tunnel to its peers within one sync", async () => {
    const before = await configDump('node2');
    const deleted = await mesh.weft('cp', ['delete', 'node', 'node1', ...mesh.adminArgs]);
    expect(deleted.stdout).toMatch(
      /^node\/node1 deleted: 2 certificates revoked, 1 workload removed$/m,
    );

    // The sync that carries the revocation to node2 ...
    let dump = before;
    await waitFor(
      'the revocation on node2',
      async () => {
        dump = await configDump('node2');
        return dump.resources.some(
          (r) =>
            (r as { kind: string; spec: { node?: string } }).kind === 'Revocation' &&
            (r as { spec: { node: string } }).spec.node === 'node1',
        );
      },
      30_000,
    );
    expect(dump.version).toBeGreaterThan(before.version);

    // ... is all it takes: node1, which still holds its certificates and node2's endpoint in
    // its last snapshot, is refused by node2 from then on.
    const node1 = await configDump('node1');
    expect(JSON.stringify(node1.resources)).toContain('node2-echo-8080');
    // node1's agent answers curl itself: the one endpoint's tunnel fails its handshake.
    const after = await curlEcho();
    expect(after.body).not.toContain('hello from node2');
    expect(after).toMatchObject({ status: 503, reason: 'no_healthy_endpoint' });
    expect(after.body).toContain(
      `tunnel to ${mesh.lab.host('node2').address}:15008: handshake failed`,
    );
    // node2 says why (its log is written asynchronously: wait for the line).
    const isRefusal = (l: Record<string, unknown>) =>
      (l.msg === 'tunnel connection refused' && l.reason === 'revoked') ||
      l.msg === 'tunnel session closed: the peer certificate was revoked';
    await waitFor(
      'node2 logging the refusal',
      async () => agentLog('node2').some(isRefusal),
      5_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; node2's last lines: ${JSON.stringify(agentLog('node2').slice(-8))}`,
      );
    });
  });

  it('lists the node no more, and shows the revocation', async () => {
    const nodes = await mesh.weft('cp', ['get', 'nodes', '-o', 'json', ...mesh.adminArgs]);
    expect((JSON.parse(nodes.stdout) as Array<{ name: string }>).map((n) => n.name)).toEqual([
      'node2',
    ]);
    const revocations = await mesh.weft('cp', ['get', 'revocations', ...mesh.adminArgs]);
    expect(revocations.stdout).toMatch(/^node1\.deleted\.\S+\s+node1\s+deleted\s+\S+\s+2\s+\S+$/m);
  });
});
