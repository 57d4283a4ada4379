// The mesh's numbers end to end, in lab hosts with real clients: node1 calls `web` and `pay`
// (served on node2) with curl; the agents report every second; the control plane's GetStats,
// `weft get services`, `weft get nodes` and `weft top` (live, in a tmux pane) show what the
// requests did: rate, success rate, host facts, and a terminal left clean on `q`.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GetStatsResponse, NodeInfo } from '../../src/api/messages.js';
import { MeshLab, type MeshLabWorkload, WEFT_BIN } from '../../src/lab/index.js';
import { run } from '../../src/sys/run.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const node = process.execPath;

const app = (service: string, port: number): MeshLabWorkload => ({
  service,
  port,
  command: [node, fixture('l7-app.mjs'), String(port)],
});

const RESOURCES = `
apiVersion: weft/v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft/v1
kind: Service
metadata: { name: pay }
spec:
  ports: [{ name: http, port: 80, targetPort: 8081, protocol: http }]
`;

let mesh: MeshLab;
let dir: string;
const tmuxSocket = `weft-stats-${randomBytes(3).toString('hex')}`;

const curl = (...args: string[]) =>
  mesh.lab.exec('node1', ['curl', '-s', '--max-time', '10', ...args], {
    user: 'weftapp',
    allowFailure: true,
  });

/** `weft ARGS` on the control plane host, with its admin credentials. */
async function weft(...args: string[]): Promise<string> {
  return (await mesh.weft('cp', [...args, ...mesh.adminArgs])).stdout;
}

async function stats(service = ''): Promise<GetStatsResponse> {
  const extra = service ? ['--service', service] : [];
  return JSON.parse(await weft('top', '--once', '-o', 'json', ...extra)) as GetStatsResponse;
}

const tmux = (...args: string[]) =>
  run('tmux', ['-L', tmuxSocket, ...args], { allowFailure: true });
const pane = async () => (await tmux('capture-pane', '-p', '-t', 'top')).stdout;

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv', 'tmux']);
  dir = mkdtempSync(join(tmpdir(), 'weft-stats-'));
  chmodSync(dir, 0o755);
  const services = join(dir, 'services.yaml');
  writeFileSync(services, RESOURCES);
  mesh = await MeshLab.up({
    name: `st${randomBytes(2).toString('hex')}`,
    nodes: [{ name: 'node1' }, { name: 'node2', workloads: [app('web', 8080), app('pay', 8081)] }],
    resourceFiles: [services],
    agentConfig: { telemetry: { stats: { intervalMs: 1_000 } } },
  });
  await waitFor(
    'web to answer from node1',
    async () => (await curl('http://web.mesh/')).stdout.includes('l7 on'),
    40_000,
  );
}, 120_000);

afterAll(async () => {
  await tmux('kill-server');
  await mesh?.lab.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('mesh-wide numbers', () => {
  it('20 requests, 5 of them 500: the service, its caller and its route show 75% success', async () => {
    const urls = [
      ...Array.from({ length: 15 }, () => 'http://pay.mesh/'),
      ...Array.from({ length: 5 }, () => 'http://pay.mesh/status/500'),
    ];
    const r = await curl('-w', '%{http_code}\n', ...urls);
    // Each answer is the app's own (no agent answered in its place), so all 20 reached node2.
    expect(r.stdout.match(/^l7 on node2|^status 500 from node2/gm)).toHaveLength(20);
    expect(r.stdout.match(/^\d{3}$/gm)).toEqual([
      ...Array(15).fill('200'),
      ...Array(5).fill('500'),
    ]);
    const seen = await waitFor(
      "node2's report of the 20 requests to reach the control plane",
      async () => {
        const s = await stats('pay');
        return s.services.find((row) => row.dstService === 'pay')?.requests === 20 &&
          s.edges.reduce((sum, e) => sum + e.requests, 0) === 20
          ? s
          : undefined;
      },
      30_000,
    );
    expect(seen.services[0]).toMatchObject({ dstService: 'pay', requests: 20, successes: 15 });
    expect(seen.services[0]!.successRate).toBe(0.75);
    expect(seen.services[0]!.requestsPerSecond).toBeGreaterThan(0);
    expect(seen.services[0]!.p99Ms).toBeGreaterThan(0);
    // As node1 saw them: one caller (curl has no workload identity there) and the default route.
    expect(seen.edges).toEqual([
      expect.objectContaining({ dstService: 'pay', requests: 20, successes: 15 }),
    ]);
    expect(seen.routes).toEqual([
      expect.objectContaining({ dstService: 'pay', route: 'default', requests: 20, successes: 15 }),
    ]);
    // `weft get services` shows the same numbers in its columns, and in -o json.
    const table = await weft('get', 'services');
    expect(table.split('\n')[0]).toMatch(/^NAME\s+VIP\s+PORTS\s+RATE\s+SUCCESS\s+P99$/);
    expect(table).toMatch(/^pay\s+240\.240\.\S+\s+80->8081\/http\s+\d+\.\d+\/s\s+75\.00%\s+\S+$/m);
    const docs = JSON.parse(await weft('get', 'services', '-o', 'json')) as Array<{
      metadata: { name: string };
      status: { stats?: { requests: number; successRate: number } };
    }>;
    expect(docs.find((d) => d.metadata.name === 'pay')?.status.stats).toMatchObject({
      requests: 20,
      successRate: 0.75,
    });
    // The YAML with its numbers applies again as it is (status is the control plane's).
    const yaml = await weft('get', 'services', 'pay', '-o', 'yaml');
    expect(yaml).toMatch(/^ {2}stats:\n/m);
    const again = join(dir, 'pay-again.yaml');
    writeFileSync(again, yaml);
    chmodSync(again, 0o644);
    expect(await weft('apply', '-f', again)).toBe('service/pay unchanged\n');
  });

  it('weft get nodes shows each host facts, agent and sync version', async () => {
    const nodes = await waitFor('both agents to report their host facts', async () => {
      const list = JSON.parse(await weft('get', 'nodes', '-o', 'json')) as NodeInfo[];
      return list.length === 2 && list.every((n) => n.hostFacts !== null) ? list : undefined;
    });
    for (const n of nodes) {
      expect(n.hostFacts).toMatchObject({
        kernel: (await run('uname', ['-r'])).stdout.trim(),
        cpus: expect.any(Number),
        agentVersion: expect.stringMatching(/^weft-agent\//),
      });
      expect(n.hostFacts!.os).toMatch(/\S/);
      expect(n.hostFacts!.memoryBytes).toBeGreaterThan(0);
      expect(n.ackedVersion).toBeGreaterThan(0);
      // Sent at join: recorded with the join itself (the stream's copy was the same).
      expect(n.hostFactsUnixMs).toBe(n.joinedUnixMs);
    }
    const table = await weft('get', 'nodes');
    expect(table.split('\n')[0]).toMatch(
      /^NAME\s+STATE\s+SERVICES\s+ADDRESSES\s+VERSION\s+SYNC\s+LAST SEEN\s+CERT EXPIRES\s+OS\s+KERNEL\s+CPUS\s+MEMORY\s+WORKLOADS$/,
    );
    expect(table).toMatch(/^node2\s+connected\s.*\sv\d+\s.*\s\d+\s+\d+(\.\d)? [GM]iB\s/m);
  });
});

describe('weft top', () => {
  it('live in an 80x24 tmux pane: web at a non-zero rate and 100% success; q leaves a clean shell', async () => {
    // Steady traffic from node1 while top runs.
    const loop = mesh.lab.spawn(
      'node1',
      ['sh', '-c', 'while true; do curl -s -o /dev/null http://web.mesh/; sleep 0.1; done'],
      { user: 'weftapp' },
    );
    try {
      const cp = mesh.lab.host('cp').netns;
      const shell = `ip netns exec ${cp} env PS1='stats-top$ ' bash --norc --noprofile`;
      await tmux('new-session', '-d', '-s', 'top', '-x', '80', '-y', '24', shell);
      await waitFor('the shell prompt', async () => (await pane()).includes('stats-top$'));
      const cmd = [WEFT_BIN, 'top', '--interval', '1s', ...mesh.adminArgs].join(' ');
      await tmux('send-keys', '-t', 'top', cmd, 'Enter');
      const screen = await waitFor(
        'top to show web with a rate and 100% success',
        async () => {
          const text = await pane();
          return /^web\s+\d+\.\d+\/s\s+100\.00%/m.test(text) && !/^web\s+-\s/m.test(text)
            ? text
            : undefined;
        },
        30_000,
      );
      const lines = screen.split('\n');
      expect(lines[0]).toMatch(/^weft top: services \(window 1m, 2 nodes\)/);
      for (const l of lines) expect([...l].length).toBeLessThanOrEqual(80);
      // The alternate screen: the shell's own lines are not under the table.
      expect(screen).not.toContain('stats-top$');
      const cursor = async () =>
        (
          await tmux('display-message', '-p', '-t', 'top', '#{cursor_flag} #{alternate_on}')
        ).stdout.trim();
      expect(await cursor()).toBe('0 1');

      await tmux('send-keys', '-t', 'top', 'q');
      const after = await waitFor('top to leave and the prompt to come back', async () => {
        const text = await pane();
        const last = text.trimEnd().split('\n').at(-1) ?? '';
        return last === 'stats-top$' ? text : undefined;
      });
      expect(after).not.toContain('weft top:');
      // Cursor shown, main screen, and the terminal cooked again (stty answers for it).
      expect(await cursor()).toBe('1 0');
      await tmux(
        'send-keys',
        '-t',
        'top',
        'stty -a | grep -o " -\\?icanon"; echo done-$((6*7))',
        'Enter',
      );
      const stty = await waitFor('stty to answer', async () => {
        const text = await pane();
        return text.includes('done-42') ? text : undefined;
      });
      expect(stty).toMatch(/^ icanon$/m);
    } finally {
      if (loop.pid !== undefined) process.kill(-loop.pid, 'SIGTERM');
    }
  }, 90_000);

  it('--service pay: its row, its route and its caller; Ctrl-C leaves a clean shell', async () => {
    const cp = mesh.lab.host('cp').netns;
    const shell = `ip netns exec ${cp} env PS1='stats-svc$ ' bash --norc --noprofile`;
    await tmux('new-session', '-d', '-s', 'svc', '-x', '80', '-y', '24', shell);
    const svc = async () => (await tmux('capture-pane', '-p', '-t', 'svc')).stdout;
    await waitFor('the shell prompt', async () => (await svc()).includes('stats-svc$'));
    const cmd = [WEFT_BIN, 'top', '--service', 'pay', ...mesh.adminArgs].join(' ');
    await tmux('send-keys', '-t', 'svc', cmd, 'Enter');
    const screen = await waitFor(
      "pay's route and caller on the screen",
      async () => {
        const text = await svc();
        return /^default\s+\d+\.\d+\/s\s+75\.00%/m.test(text) ? text : undefined;
      },
      30_000,
    );
    expect(screen.split('\n')[0]).toMatch(/^weft top: service pay \(window 1m/);
    expect(screen).toMatch(/^pay\s+\d+\.\d+\/s\s+75\.00%/m);
    expect(screen).toMatch(/^SERVICE .*\n[\s\S]*^ROUTE .*\n[\s\S]*^CALLER /m);
    await tmux('send-keys', '-t', 'svc', 'C-c');
    const after = await waitFor('top to leave on Ctrl-C', async () => {
      const text = await svc();
      return text.trimEnd().split('\n').at(-1) === 'stats-svc$' ? text : undefined;
    });
    expect(after).not.toContain('weft top:');
    const flags = await tmux(
      'display-message',
      '-p',
      '-t',
      'svc',
      '#{cursor_flag} #{alternate_on}',
    );
    expect(flags.stdout.trim()).toBe('1 0');
  }, 60_000);
});
