// The application sees its caller's real address (issue 11, items 4 and 5), in lab hosts with
// a real server that answers with its TCP peer's address: called through the mesh (outbound
// capture on node1, the tunnel, node2's agent, its HTTP pool to the app), the server sees
// node1's address, and node2's request log names curl's own address and port as `src`; called
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
  /** curl's exit code. */
  code: number;
  /** The HTTP status (0 when there was no response). */
  status: number;
  /** The response's weft-reason: set when the agent answered itself. */
  reason: string;
  /** The address and port the server saw as its peer ("" when it did not answer). */
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
      [
        'curl',
        '-s',
        '--max-time',
        '10',
        '-w',
        '\n%{http_code} %{local_port} %header{weft-reason}',
        url,
      ],
      { user: 'weftapp', allowFailure: true },
    );
    // The body is one line ("peer ip:port\n" from the server, "weft: ...\n" from the agent);
    // -w appends the status, curl's source port and the weft-reason after it.
    const lines = r.stdout.split('\n');
    const [status = '0', localPort = '', reason = ''] = (lines.pop() ?? '').split(' ');
    const seen = /^peer (\S+)$/m.exec(lines.join('\n'))?.[1] ?? '';
    return { code: r.exitCode, status: Number(status), reason, seen, localPort };
  }

  /** What a call proves nothing without: the server's own answer (curl exits 0 on a 503 too). */
  function expectServerAnswered(r: Call): void {
    expect(r).toMatchObject({ code: 0, status: 200, reason: '' });
    expect(r.seen).not.toBe('');
  }

  /** The agent's log lines (JSON) on a host of one kind: 'connection' or 'request'. */
  function accessLog(host: string, msg: string): Array<Record<string, unknown>> {
    const text = readFileSync(join(mesh.lab.dir, `${host}.agent.log`), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg);
  }

  async function logLine(
    host: string,
    msg: string,
    match: (l: Record<string, unknown>) => boolean,
  ) {
    await waitFor(
      `the ${msg} log line on ${host}`,
      async () => accessLog(host, msg).some(match),
      30_000,
    );
    return accessLog(host, msg).find(match)!;
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
      async () => {
        const r = await call('node1', 'http://whoami.mesh/');
        return r.code === 0 && r.status === 200 && r.seen !== '';
      },
      30_000,
    );
  });

  afterAll(async () => {
    await mesh?.lab.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("through the mesh the server sees the calling host's address, and node2 logs curl's as src", async () => {
    const r = await call('node1', 'http://whoami.mesh/');
    expectServerAnswered(r);
    expect(r.seen.split(':')[0]).toBe(address('node1'));

    // The port is HTTP: the request rides the pooled tunnel session as an HTTP/2 stream, and
    // node2 logs it as a request whose src is curl's own address and port, vouched for by
    // node1's agent over mTLS (src_identity), and seen by the app (src_preserved).
    const src = `${address('node1')}:${r.localPort}`;
    const line = await logLine(
      'node2',
      'request',
      (l) => l.direction === 'inbound' && l.src === src,
    );
    expect(line).toMatchObject({
      dst_service: 'whoami',
      status: 200,
      src_identity: 'spiffe://weft.local/node/node1',
      src_preserved: true,
    });
  });

  it('from a host outside the mesh (plaintext on 15006) the server sees that host', async () => {
    const r = await call('cp', `http://${address('node2')}:8090/`);
    expectServerAnswered(r);
    expect(r.seen.split(':')[0]).toBe(address('cp'));

    const src = `${address('cp')}:${r.localPort}`;
    // Plaintext from outside the mesh is still judged per connection (README, the L7 path).
    const line = await logLine(
      'node2',
      'connection',
      (l) => l.direction === 'inbound' && l.src === src,
    );
    expect(line).toMatchObject({ security: 'plaintext', src_preserved: true });
  });

  it('a caller on the same host keeps working, and is seen as that host', async () => {
    const r = await call('node2', 'http://whoami.mesh/');
    expectServerAnswered(r);
    expect(r.seen.split(':')[0]).toBe(address('node2'));
  });

  it("the server's own log names the callers it saw", async () => {
    const log = readFileSync(join(mesh.lab.dir, 'node2.whoami.log'), 'utf8');
    expect(log).toContain(`peer ${address('node1')}:`);
    expect(log).toContain(`peer ${address('cp')}:`);
  });
});
