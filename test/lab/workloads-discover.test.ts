// `weft workloads discover` in a lab host with a real nginx and redis started outside weft:
// both are found with their process and user (weft's own sockets and a loopback-only redis are
// listed as skipped), the proposed Service documents apply as printed, and `--register` writes
// the chosen ones into the agent config (comments and order kept, all or nothing, mode and
// owner kept) and reloads the agent, whose workloads then show in `weft get workloads`.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Candidate } from '../../src/cli/commands/workloads-discover-plan.js';
import { MeshLab } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

let mesh: MeshLab;
let dir: string;

const discover = (...args: string[]) =>
  mesh.weft('node1', ['workloads', 'discover', '-c', mesh.configFile('node1'), ...args], {
    allowFailure: true,
  });

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv', 'nginx', 'redis-server']);
  dir = mkdtempSync(join(tmpdir(), 'weft-discover-'));
  chmodSync(dir, 0o755);
  mesh = await MeshLab.up({
    name: `disc${randomBytes(2).toString('hex')}`,
    nodes: [{ name: 'node1' }],
  });
  // nginx as Debian runs it (a root master), with its files in this test's directory.
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server { listen 80; location / { return 200 "nginx\\n"; } }
}
`,
  );
  await mesh.lab.startProcess('node1', {
    name: 'nginx',
    command: ['nginx', '-e', 'stderr', '-p', dir, '-c', conf],
    user: 'root',
  });
  const redis = (port: number, bind: string) => {
    const file = join(dir, `redis-${port}.conf`);
    writeFileSync(
      file,
      `port ${port}\nbind ${bind}\nsave ""\nappendonly no\ndir ${dir}\nprotected-mode no\n`,
    );
    return mesh.lab.startProcess('node1', {
      name: `redis-${port}`,
      command: ['redis-server', file],
      user: 'weftapp',
    });
  };
  await redis(6379, '0.0.0.0');
  await redis(6380, '127.0.0.1');
  await waitFor(
    "nginx, both redis servers and node1's agent to listen",
    async () => {
      const out = (await mesh.lab.exec('node1', ['ss', '-ltn'])).stdout;
      return [':80 ', ':6379 ', '127.0.0.1:6380 ', ':15001 ', ':15000 '].every((p) =>
        out.includes(p),
      );
    },
    30_000,
  );
}, 120_000);

afterAll(async () => {
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('weft workloads discover', () => {
  it('finds nginx and redis with their process and user; skips weft and loopback-only', async () => {
    const r = await discover('-o', 'json');
    expect(r.exitCode, r.stderr).toBe(0);
    const { candidates } = JSON.parse(r.stdout) as { candidates: Candidate[] };
    const at = (port: number) => candidates.find((c) => c.port === port);
    expect(at(80)).toMatchObject({
      service: 'nginx',
      process: 'nginx',
      user: 'root',
      protocol: 'http',
    });
    expect(at(80)!.skipped).toBeUndefined();
    expect(at(6379)).toMatchObject({ service: 'redis-server', user: 'weftapp', protocol: 'tcp' });
    expect(at(6379)!.skipped).toBeUndefined();
    expect(at(6380)).toMatchObject({ service: 'redis-server', skipped: 'loopback' });
    for (const port of [15000, 15001, 15006, 15008, 15020])
      expect(at(port), `agent port ${port} in ${r.stdout}`).toMatchObject({ skipped: 'weft' });
    const all = JSON.parse((await discover('-o', 'json', '--all')).stdout) as {
      candidates: Candidate[];
    };
    expect(all.candidates.find((c) => c.port === 6380)!.skipped).toBeUndefined();
  });

  it('prints Service documents that apply as they are, and agent.yaml entries', async () => {
    const r = await discover('-o', 'yaml');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      '- service: redis-server\n    name: redis-server-6379\n    port: 6379\n    user: weftapp',
    );
    const services = r.stdout.slice(0, r.stdout.indexOf('# agent.yaml'));
    const file = join(dir, 'services.yaml');
    writeFileSync(file, services);
    const applied = await mesh.weft('cp', ['apply', '-f', file, ...mesh.adminArgs]);
    expect(applied.stdout).toMatch(/service\/nginx created/i);
    expect(applied.stdout).toMatch(/service\/redis-server created/i);
  });

  it('--register writes all or nothing, keeps comments, order, mode and owner, and reloads the agent', async () => {
    const file = mesh.configFile('node1');
    // The file as an operator keeps it: a comment to keep.
    writeFileSync(file, `# node1's agent, kept by hand\n${readFileSync(file, 'utf8')}`);
    const before = readFileSync(file, 'utf8');
    const { mode, uid, gid } = statSync(file);

    // All or nothing: one unknown name registers nothing.
    const refused = await discover('--register', 'nginx', 'nosuch');
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(/nothing registered: nosuch is not proposed/);
    expect(readFileSync(file, 'utf8')).toBe(before);

    await mesh.weft('cp', [
      'node',
      'allow',
      'node1',
      '--service',
      'nginx,redis-server',
      ...mesh.adminArgs,
    ]);
    const r = await discover('--register', 'nginx', 'redis-server');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/added nginx-80, redis-server-6379/);
    expect(r.stdout).toMatch(/reloaded the agent \(SIGHUP to \d+\)/);
    const after = readFileSync(file, 'utf8');
    expect(after.startsWith("# node1's agent, kept by hand\n")).toBe(true);
    expect(after).toContain('redis-server-6379');
    // The keys the file had come first, in their order.
    const keys = (text: string) => [...text.matchAll(/^\s*"?(\w+)"?\s*:/gm)].map((m) => m[1]);
    expect(keys(after).slice(0, 3)).toEqual(keys(before).slice(0, 3));
    const st = statSync(file);
    expect([st.mode, st.uid, st.gid]).toEqual([mode, uid, gid]);

    await waitFor(
      'node1 to register nginx and redis-server',
      async () => {
        const out = (await mesh.weft('cp', ['get', 'workloads', ...mesh.adminArgs])).stdout;
        return (
          /node1-nginx-80\s+nginx\s+node1/.test(out) &&
          /node1-redis-server-6379\s+redis-server\s+node1/.test(out)
        );
      },
      30_000,
    );

    // Registered already: a second --register clashes and changes nothing.
    const again = await discover('--register', 'nginx');
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toMatch(/already has a workload of nginx on port 80/);
    expect(readFileSync(file, 'utf8')).toBe(after);
  });
});
