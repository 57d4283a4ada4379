// The HA lab (`weft lab up --ha`): three etcd members in their own hosts (a real three-member
// cluster over the lab network), three `weft controlplane --store etcd` replicas in theirs, and
// three nodes whose agents list the three replicas. Everything is a real process in a lab host;
// the test reads what an operator reads (the CLI, /readyz, each agent's /config_dump) and calls
// through the mesh with curl. In order: decisions made by etcd transactions across replicas;
// a replica killed with kill -9 while traffic flows and changes are applied; etcd members
// killed and brought back; and the lab torn down with nothing of etcd left.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigDumpView } from '../../src/agent/admin-views.js';
import {
  ETCD_HOSTS,
  ETCD_PROCESS,
  REPLICA_HOSTS,
  REPLICA_PROCESS,
} from '../../src/lab/ha-control-plane.js';
import { MeshLab, type MeshLabWorkload } from '../../src/lab/index.js';
import { isRunning } from '../../src/lab/processes.js';
import { runWeft } from '../helpers/controlplane.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const DEMO = fileURLToPath(new URL('../../scripts/demo/', import.meta.url));
const ADMIN = fileURLToPath(new URL('../fixtures/ha-admin.mjs', import.meta.url));
const NODES = ['node1', 'node2', 'node3'] as const;

const echo: MeshLabWorkload = {
  service: 'echo',
  port: 8080,
  command: [process.execPath, join(DEMO, 'echo-server.mjs'), '8080'],
};

let mesh: MeshLab;

/** Pids of processes whose command line names a path under `dir`. */
function processesUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** An agent's /config_dump, read inside its host (undefined while the agent does not answer). */
async function configDump(node: string): Promise<ConfigDumpView | undefined> {
  const r = await mesh.lab.exec(
    node,
    ['curl', '-s', '--max-time', '2', 'http://127.0.0.1:15000/config_dump'],
    { allowFailure: true },
  );
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as ConfigDumpView) : undefined;
}

/** The replica host (cp1-3) an agent is connected to now; undefined while it is not. */
async function replicaOf(node: string): Promise<string | undefined> {
  const dump = await configDump(node);
  if (dump?.state !== 'connected') return undefined;
  return REPLICA_HOSTS.find((h) => `${mesh.lab.host(h).address}:15012` === dump.controlPlane);
}

async function replicasOfAll(): Promise<Record<string, string> | undefined> {
  const on: Record<string, string> = {};
  for (const node of NODES) {
    const replica = await replicaOf(node);
    if (replica === undefined) return undefined;
    on[node] = replica;
  }
  return on;
}

/** One HTTP call from node1 to the echo service through the mesh: the status (0: none). */
async function callEcho(): Promise<number> {
  const r = await mesh.lab.exec(
    'node1',
    ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://echo.mesh/'],
    { user: 'weftapp', allowFailure: true },
  );
  return Number(r.stdout) || 0;
}

/** `weft apply -f` of one Service through a replica, on its host with its admin credential. */
async function applyService(host: string, name: string) {
  const file = join(mesh.lab.dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports: [{ port: 80 }]\n`,
  );
  return mesh.weft(host, ['apply', '-f', file, ...mesh.adminArgsOn(host)], { allowFailure: true });
}

/** The names of the Services a replica lists. */
async function servicesOn(host: string): Promise<Set<string>> {
  const r = await mesh.weft(host, ['get', 'services', '-o', 'json', ...mesh.adminArgsOn(host)]);
  return new Set(
    (JSON.parse(r.stdout) as Array<{ metadata: { name: string } }>).map((d) => d.metadata.name),
  );
}

async function readyz(host: string): Promise<{ ok: boolean; body: string }> {
  const r = await mesh.lab.exec(
    host,
    ['curl', '-s', '--max-time', '3', '-w', '\n%{http_code}', 'http://127.0.0.1:15014/readyz'],
    { allowFailure: true },
  );
  const cut = r.stdout.lastIndexOf('\n');
  return { ok: r.stdout.slice(cut + 1) === '200', body: r.stdout.slice(0, cut) };
}

/** Runs the admin fixture inside cp1 (its admin credential is trusted by every replica). */
async function adminFixture(...args: string[]): Promise<Record<string, unknown>> {
  const r = await mesh.lab.exec('cp1', [process.execPath, ADMIN, ...args], { timeoutMs: 180_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const replicaAddress = (host: string) => `${mesh.lab.host(host).address}:15012`;
const credentials = () => join(mesh.lab.dir, 'cp1', 'admin');

/** Whether every agent holds Service `name` in its snapshot. */
async function everyAgentHas(name: string): Promise<boolean> {
  for (const node of NODES) {
    const dump = await configDump(node);
    const names = (dump?.resources ?? []) as Array<{ kind: string; metadata: { name: string } }>;
    if (!names.some((r) => r.kind === 'Service' && r.metadata.name === name)) return false;
  }
  return true;
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'curl', 'setpriv', 'etcd']);
  mesh = await MeshLab.up({
    name: `ha${randomBytes(3).toString('hex')}`,
    ha: true,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [echo] },
      { name: 'node3', workloads: [echo] },
    ],
    resourceFiles: [join(DEMO, 'resources.yaml')],
  });
  await waitFor('every agent connected to a replica', replicasOfAll, 120_000);
  await waitFor('echo through the mesh from node1', async () => (await callEcho()) === 200, 60_000);
}, 600_000);

afterAll(async () => {
  await mesh?.lab.down();
});

describe('weft lab up --ha', () => {
  it('refuses a spec with --ha, saying why', async () => {
    const r = await runWeft(['lab', 'up', '--ha', '-f', join(DEMO, 'resources.yaml')]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('WEFT_E_USAGE');
    expect(r.stderr).toContain('--ha builds the demo lab');
  });
});

describe('the HA lab', () => {
  it('runs a three-member etcd cluster and three replicas, each in its own host', async () => {
    const members = await mesh.lab.exec('etcd1', ['etcdctl', 'member', 'list']);
    for (const host of ETCD_HOSTS)
      expect(members.stdout).toContain(
        `, started, ${host}, http://${mesh.lab.host(host).address}:2380`,
      );
    for (const host of REPLICA_HOSTS) expect((await readyz(host)).ok).toBe(true);
    for (const node of NODES) {
      const dump = await configDump(node);
      expect([...(dump?.controlPlanes ?? [])].sort()).toEqual(
        REPLICA_HOSTS.map(replicaAddress).sort(),
      );
    }
  });

  it('gives the replicas one CA through etcd, sealed under the KEK: no replica holds its key in a file', async () => {
    for (const host of REPLICA_HOSTS)
      expect(existsSync(join(mesh.lab.dir, host, 'ca.key')), host).toBe(false);
    const sealed = await mesh.lab.exec('etcd1', [
      'etcdctl',
      'get',
      '--print-value-only',
      '/weft/ca-key',
    ]);
    expect(sealed.stdout).not.toMatch(/PRIVATE KEY/);
    expect(sealed.stdout.length).toBeGreaterThan(0);
    // Each replica gives join tokens the same CA pin: one CA.
    const pins = new Set<string | undefined>();
    for (const host of REPLICA_HOSTS) {
      const made = await mesh.weft(host, [
        'token',
        'create',
        '--node',
        `pin-${host}`,
        ...mesh.adminArgsOn(host),
      ]);
      pins.add(/^CA pin:\s+(\S+)/m.exec(made.stdout)?.[1]);
    }
    expect([...pins]).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/)]);
  });
});

describe('decided by etcd transactions, across replicas in their hosts', () => {
  it('lets exactly one of two conflicting applies through two replicas win; the other gets WEFT_E_CONFLICT', async () => {
    const out = await adminFixture(
      'conflict',
      credentials(),
      'contested',
      replicaAddress('cp1'),
      replicaAddress('cp2'),
    );
    expect(out.won).toBe(1);
    expect(out.lost).toEqual([
      expect.objectContaining({
        code: 'WEFT_E_CONFLICT',
        message: expect.stringContaining('Service/contested was changed since it was read'),
      }),
    ]);
    expect(out.port).toBe(out.winner);
  });

  it('gives 100 Services created at once through two replicas 100 distinct virtual IPs', async () => {
    const out = await adminFixture(
      'create-many',
      credentials(),
      'many',
      '100',
      replicaAddress('cp1'),
      replicaAddress('cp2'),
    );
    expect(out.failed).toEqual([]);
    expect(out.created).toBe(100);
    const vips = out.vips as string[];
    expect(vips).toHaveLength(100);
    expect(vips.every((v) => typeof v === 'string' && v !== '')).toBe(true);
    expect(new Set(vips).size).toBe(100);
  });

  it('refuses at one replica a token used at another', async () => {
    const made = await mesh.weft('cp1', [
      'token',
      'create',
      '--node',
      'spare',
      '--ttl',
      '10m',
      ...mesh.adminArgsOn('cp1'),
    ]);
    const token = /^token:\s+(\S+)/m.exec(made.stdout)![1]!;
    const caPin = /^CA pin:\s+(\S+)/m.exec(made.stdout)![1]!;
    const out = await adminFixture(
      'join',
      token,
      caPin,
      'spare',
      replicaAddress('cp2'),
      replicaAddress('cp3'),
    );
    expect(out.first).toMatchObject({ ok: true });
    expect(out.second).toMatchObject({ ok: false, code: 'WEFT_E_DENIED', reason: 'token_used' });
  });
});

describe('a replica killed with kill -9', () => {
  it('while traffic flows and changes are applied: its agents move to another replica, no request fails, every acknowledged apply is kept', async () => {
    const before = (await waitFor('every agent connected', replicasOfAll, 60_000))!;
    // The replica with the most agents on it.
    const count = (h: string) => Object.values(before).filter((r) => r === h).length;
    const victim = [...REPLICA_HOSTS].sort((x, y) => count(y) - count(x))[0]!;
    const moved = NODES.filter((n) => before[n] === victim);
    expect(moved.length).toBeGreaterThan(0);

    // Traffic: one call after another from node1 through the mesh, until told to stop.
    const statuses: number[] = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) statuses.push(await callEcho());
    })();
    // Changes: Services applied through every replica in turn, the victim included.
    const acknowledged: string[] = [];
    const refused: string[] = [];
    let n = 0;
    const changes = (async () => {
      while (!stop) {
        const host = REPLICA_HOSTS[n % REPLICA_HOSTS.length]!;
        const name = `during-${n++}`;
        const r = await applyService(host, name);
        (r.exitCode === 0 ? acknowledged : refused).push(name);
      }
    })();
    try {
      await waitFor(
        'traffic and changes under way',
        () => statuses.length >= 3 && acknowledged.length >= 3,
        60_000,
      );
      expect(await mesh.lab.killProcess(victim, REPLICA_PROCESS)).toBe(true);
      const callsAtKill = statuses.length;
      await waitFor(
        `the agents of ${victim} (${moved.join(', ')}) on another replica`,
        async () => {
          for (const node of moved) {
            const on = await replicaOf(node);
            if (on === undefined || on === victim) return false;
          }
          return true;
        },
        60_000,
      );
      // Keep calling and changing a while after the move: the survivors carry it all.
      const ackedAtMove = acknowledged.length;
      await waitFor(
        'calls and acknowledged changes after the move',
        () => statuses.length >= callsAtKill + 10 && acknowledged.length >= ackedAtMove + 3,
        120_000,
      );
    } finally {
      stop = true;
      await traffic;
      await changes;
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Every acknowledged apply is in etcd, as both surviving replicas list it.
    for (const host of REPLICA_HOSTS.filter((h) => h !== victim)) {
      const listed = await servicesOn(host);
      expect(acknowledged.filter((name) => !listed.has(name))).toEqual([]);
    }
    const last = acknowledged.at(-1)!;
    await waitFor(`every agent holding ${last}`, () => everyAgentHas(last), 60_000);

    // The killed replica comes back on its data directory and is ready again.
    await mesh.ha!.startReplica(victim);
    expect((await readyz(victim)).ok).toBe(true);
  }, 600_000);
});

describe('etcd members killed and brought back', () => {
  it('goes on with one of three members down; with two down refuses changes naming etcd while agents keep serving; converges when they return', async () => {
    expect(await mesh.lab.killProcess('etcd1', ETCD_PROCESS)).toBe(true);
    // Every apply goes through at once, through every replica: a quorum is left.
    for (const host of REPLICA_HOSTS) {
      const one = await applyService(host, `one-member-down-${host}`);
      expect(one.stderr).toBe('');
      expect(one.exitCode).toBe(0);
    }
    for (const host of REPLICA_HOSTS) expect((await readyz(host)).ok).toBe(true);

    expect(await mesh.lab.killProcess('etcd2', ETCD_PROCESS)).toBe(true);
    // No quorum: every replica says so in /readyz, and refuses changes with an error naming etcd.
    for (const host of REPLICA_HOSTS)
      await waitFor(`${host} not ready`, async () => !(await readyz(host)).ok, 60_000);
    expect((await readyz('cp1')).body).toMatch(/^not ready: etcd \(.*\) unreachable since /);
    for (const host of REPLICA_HOSTS) {
      const refused = await applyService(host, `no-quorum-${host}`);
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toMatch(/WEFT_E_STORE.*etcd \(http:\/\/.*\) unreachable since/);
    }
    // Agents serve what they hold: calls through the mesh still answer.
    for (let i = 0; i < 5; i++) expect(await callEcho()).toBe(200);

    await mesh.ha!.startMember('etcd1', { wait: false });
    await mesh.ha!.startMember('etcd2');
    for (const host of REPLICA_HOSTS)
      await waitFor(`${host} ready again`, async () => (await readyz(host)).ok, 120_000);
    const after = await waitFor(
      'an apply once the members are back',
      async () => {
        const r = await applyService('cp2', 'members-back');
        return r.exitCode === 0 ? r : undefined;
      },
      60_000,
    );
    expect(after.stdout).toContain('members-back');
    await waitFor('every agent holding members-back', () => everyAgentHas('members-back'), 120_000);
    await waitFor('every agent connected to a replica', replicasOfAll, 120_000);
    for (const host of REPLICA_HOSTS) {
      const listed = await servicesOn(host);
      for (const cp of REPLICA_HOSTS) expect(listed.has(`one-member-down-${cp}`)).toBe(true);
      expect([...listed].filter((n) => n.startsWith('no-quorum-'))).toEqual([]);
    }
    expect(await callEcho()).toBe(200);
  }, 600_000);
});

describe('a replica cut off from etcd (the others keep it)', () => {
  it('is not ready and refuses changes naming etcd, its agents move to a replica that has etcd, and it recovers without a restart', async () => {
    const before = (await waitFor('every agent connected', replicasOfAll, 120_000))!;
    const count = (h: string) => Object.values(before).filter((r) => r === h).length;
    const cut = [...REPLICA_HOSTS].sort((x, y) => count(y) - count(x))[0]!;
    const moving = NODES.filter((n) => before[n] === cut);
    expect(moving.length).toBeGreaterThan(0);
    // A partition between this replica and every etcd member: its packets to them are reset.
    const rule = [
      'OUTPUT',
      '-p',
      'tcp',
      '--dport',
      '2379',
      '-j',
      'REJECT',
      '--reject-with',
      'tcp-reset',
    ];
    await mesh.lab.exec(cut, ['iptables', '-w', '-A', ...rule]);
    try {
      await waitFor(`${cut} not ready`, async () => !(await readyz(cut)).ok, 60_000);
      expect((await readyz(cut)).body).toMatch(
        /^not ready: etcd \(http:\/\/.*\) unreachable since /,
      );
      const refused = await applyService(cut, `while-${cut}-is-cut`);
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toMatch(/WEFT_E_STORE.*etcd \(http:\/\/.*\) unreachable since/);
      for (const host of REPLICA_HOSTS.filter((h) => h !== cut))
        expect((await readyz(host)).ok).toBe(true);
      await waitFor(
        `the agents of ${cut} (${moving.join(', ')}) on a replica that has etcd`,
        async () => {
          for (const node of moving) {
            const on = await replicaOf(node);
            if (on === undefined || on === cut) return false;
          }
          return true;
        },
        60_000,
      );
      const other = REPLICA_HOSTS.find((h) => h !== cut)!;
      expect((await applyService(other, 'through-the-others')).exitCode).toBe(0);
      await waitFor(
        'every agent holding through-the-others',
        () => everyAgentHas('through-the-others'),
        60_000,
      );
      expect(await callEcho()).toBe(200);
    } finally {
      await mesh.lab.exec(cut, ['iptables', '-w', '-D', ...rule], { allowFailure: true });
    }
    await waitFor(`${cut} ready again`, async () => (await readyz(cut)).ok, 60_000);
    const back = await applyService(cut, `after-${cut}-is-back`);
    expect(back.exitCode).toBe(0);
    await waitFor(
      `every agent holding after-${cut}-is-back`,
      () => everyAgentHas(`after-${cut}-is-back`),
      60_000,
    );
    expect((await servicesOn(cut)).has(`while-${cut}-is-cut`)).toBe(false);
  }, 600_000);
});

describe('weft lab down', () => {
  it('leaves no etcd process and no data directory', async () => {
    const etcds = mesh.lab.processes().filter((p) => p.name === ETCD_PROCESS);
    expect(etcds).toHaveLength(3);
    const dirs = ETCD_HOSTS.map((h) => mesh.ha!.dataDir(h));
    for (const d of dirs) expect(existsSync(join(d, 'data'))).toBe(true);
    await mesh.lab.down();
    for (const p of etcds) expect(isRunning(p)).toBe(false);
    for (const d of dirs) expect(existsSync(d)).toBe(false);
    expect(existsSync(mesh.lab.dir)).toBe(false);
    // No process anywhere still runs from the lab's directory (an etcd member, a replica).
    expect(processesUnder(mesh.lab.dir)).toEqual([]);
  });
});
