// The application sees its caller's real address (issue 11, items 4 and 5), in lab hosts with
// a real server that answers with its TCP peer's address: called through the mesh (outbound
// capture on node1, the tunnel, node2's agent), the server sees node1's address, and node2's
// access log names curl's own address and port as `src` and the tunnel's as `peer`; called
// from a host outside the mesh (plaintext, captured on 15006), it sees that host's address.
// Both inbound capture modes, REDIRECT and TPROXY, carry it.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshLab } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const SERVER = fileURLToPath(new URL('../fixtures/peer-address-server.mjs', import.meta.url));

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: whoami }
spec: { ports: [{ port: 80, targetPort: 8090, protocol: http }] }
`;

interface Call {
  code: number;
  /** The address and port the server saw as its peer. */
  seen: string;
  /** curl's own source port. */
  localPort: string;
}

describe.each(['redirect', 'tproxy'] as const)('inbound mode %s', (inboundMode) => {
  let mesh: MeshLab;
  let dir: string;

  /** curl on `host` as an application user; what the server saw, and curl's source port. */
  async function call(host: string, url: string): Promise<Call> {
    const r = await mesh.lab.exec(
      host,
      ['curl', '-s', '--max-time', '10', '-w', '%{local_port}', url],
      { user: 'weftapp', allowFailure: true },
    );
    // The body is one line ("peer ip:port\n"); -w appends curl's source port after it.
    const [body = '', localPort = ''] = r.stdout.split('\n').filter((l) => l !== '');
    return { code: r.exitCode, seen: body.replace(/^peer /, ''), localPort };
  }

  /** The agent's access-log lines (JSON) on a host. */
  function accessLog(host: string): Array<Record<string, unknown>> {
    const text = readFileSync(join(mesh.lab.dir, `${host}.agent.log`), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'connection');
  }

  async function logLine(host: string, match: (l: Record<string, unknown>) => boolean) {
    await waitFor(
      `the access-log line on ${host}`,
      async () => accessLog(host).some(match),
      30_000,
    );
    return accessLog(host).find(match)!;
  }

  const address = (host: string) => mesh.lab.host(host).address;

  beforeAll(async () => {
    requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv']);
    dir = mkdtempSync(join(tmpdir(), 'weft-clientip-'));
    chmodSync(dir, 0o755);
    const services = join(dir, 'services.yaml');
    writeFileSync(services, RESOURCES);
    mesh = await MeshLab.up({
      name: `cip${randomBytes(2).toString('hex')}`,
      nodes: [
        { name: 'node1' },
        {
          name: 'node2',
          workloads: [
            { service: 'whoami', port: 8090, command: [process.execPath, SERVER, '8090'] },
          ],
        },
      ],
      resourceFiles: [services],
      agentConfig: { capture: { dns: { enabled: true }, inboundMode } },
    });
    await waitFor(
      'whoami to answer through the mesh',
      async () => (await call('node1', 'http://whoami.mesh/')).code === 0,
      30_000,
    );
  });

  afterAll(async () => {
    await mesh?.lab.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("through the mesh the server sees the calling host's address, and node2 logs curl's as src", async () => {
    const r = await call('node1', 'http://whoami.mesh/');
    expect(r.code).toBe(0);
    expect(r.seen.split(':')[0]).toBe(address('node1'));

    const src = `${address('node1')}:${r.localPort}`;
    const line = await logLine('node2', (l) => l.direction === 'inbound' && l.src === src);
    expect(line).toMatchObject({ security: 'mtls', dst_service: 'whoami', src_preserved: true });
    // The tunnel's own connection is logged apart, as the peer: same host, another port.
    expect(String(line.peer)).toMatch(
      new RegExp(`^${address('node1').replace(/\./g, '\\.')}:\\d+$`),
    );
    expect(line.peer).not.toBe(src);
  });

  it('from a host outside the mesh (plaintext on 15006) the server sees that host', async () => {
    const r = await call('cp', `http://${address('node2')}:8090/`);
    expect(r.code).toBe(0);
    expect(r.seen.split(':')[0]).toBe(address('cp'));

    const src = `${address('cp')}:${r.localPort}`;
    const line = await logLine('node2', (l) => l.direction === 'inbound' && l.src === src);
    expect(line).toMatchObject({ security: 'plaintext', src_preserved: true });
  });

  it('a caller on the same host keeps working, and is seen as that host', async () => {
    const r = await call('node2', 'http://whoami.mesh/');
    expect(r.code).toBe(0);
    expect(r.seen.split(':')[0]).toBe(address('node2'));
  });

  it("the server's own log names the callers it saw", async () => {
    const log = readFileSync(join(mesh.lab.dir, 'node2.whoami.log'), 'utf8');
    expect(log).toContain(`peer ${address('node1')}:`);
    expect(log).toContain(`peer ${address('cp')}:`);
  });
});
