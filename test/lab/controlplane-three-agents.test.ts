// One control plane and three agents in four lab hosts: joining with tokens, certificates,
// every agent seeing every change within 1 s, and fail static when the control plane dies
// (agents keep serving, a restarted agent comes up from its cache) until it returns. Agents
// and the control plane are real processes; the test reads what an operator reads: each
// agent's admin endpoint (curl inside its host) and the CLI's output.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  CertView,
  ConfigDumpView,
  EndpointsView,
  ReadyView,
} from '../../src/agent/admin-views.js';
import { Lab } from '../../src/lab/index.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
// Stand-ins until bin/weft registers every verb and `weft agent` runs the session (see them).
const WEFT_CLI = fileURLToPath(new URL('../../bin/weft', import.meta.url));

const BANNER = fixture('banner-server.mjs');
const AGENTS = ['a1', 'a2', 'a3'] as const;
type AgentHost = (typeof AGENTS)[number];

let lab: Lab;
let dir: string;
let cpProcess: ChildProcess | undefined;
const agents = new Map<AgentHost, ChildProcess>();
/** Each agent's workloads: service -> port of its banner server. */
const workloads: Record<AgentHost, { service: string; port: number }[]> = {
  a1: [{ service: 'echo', port: 8080 }],
  a2: [{ service: 'echo', port: 8080 }],
  a3: [{ service: 'web', port: 8080 }],
};

function cpAddress(): string {
  return `${lab.host('cp').address}:15012`;
}

/** The CLI in host cp, as an operator on the control plane host runs it. */
async function weft(args: string[]): Promise<string> {
  const admin = ['--server', '127.0.0.1:15012', '--credentials', join(dir, 'cp', 'admin')];
  const r = await lab.exec('cp', [process.execPath, WEFT_CLI, ...args, ...admin], {
    timeoutMs: 20_000,
  });
  return r.stdout;
}

async function adminGet<T>(
  host: string,
  path: string,
): Promise<{ status: number; body: T } | undefined> {
  const r = await lab.exec(
    host,
    ['curl', '-s', '--max-time', '2', '-w', '\n%{http_code}', `http://127.0.0.1:15000${path}`],
    {
      allowFailure: true,
    },
  );
  if (r.exitCode !== 0) return undefined;
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: JSON.parse(r.stdout.slice(0, cut)) as T };
}

/** Waits until every agent's /endpoints satisfies `check`, within `timeoutMs` (the budget). */
async function allAgentsSee(
  what: string,
  check: (e: EndpointsView) => boolean,
  timeoutMs: number,
): Promise<void> {
  await Promise.all(
    AGENTS.map((host) =>
      waitFor(
        `${host}: ${what}`,
        async () => {
          const r = await adminGet<EndpointsView>(host, '/endpoints');
          return r && check(r.body) ? true : undefined;
        },
        timeoutMs,
      ),
    ),
  );
}

const endpointsOf = (e: EndpointsView, service: string) =>
  (e.services[service]?.endpoints ?? []).map((x) => `${x.node}/${x.address}:${x.port}`).sort();

async function startControlPlane(): Promise<void> {
  cpProcess = lab.spawn(
    'cp',
    [process.execPath, WEFT_CLI, 'controlplane', '--config', join(dir, 'cp.yaml')],
    {
      logFile: join(dir, 'cp.log'),
    },
  );
  await waitFor(
    'the control plane to be ready',
    async () => {
      const r = await lab.exec('cp', ['curl', '-sf', 'http://127.0.0.1:15014/readyz'], {
        allowFailure: true,
      });
      return r.exitCode === 0 ? true : undefined;
    },
    20_000,
  );
}

async function stopProcess(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/** Join credentials per host: kept in the config after joining, as an operator would. */
const joinWith = new Map<AgentHost, { token: string; caPin: string }>();

function writeAgentConfig(host: AgentHost): void {
  const { token, caPin } = joinWith.get(host)!;
  const config = {
    hostname: host,
    dataDir: join(dir, host),
    addresses: [lab.host(host).address],
    controlPlane: { address: cpAddress(), token, caPin },
    workloads: workloads[host].map((w) => ({ ...w, health: { intervalMs: 500 } })),
    heartbeatIntervalMs: 1_000,
  };
  writeFileSync(join(dir, `${host}.yaml`), JSON.stringify(config, null, 2));
}

async function startAgent(host: AgentHost): Promise<void> {
  agents.set(
    host,
    lab.spawn(host, [process.execPath, WEFT_CLI, 'agent', '--config', join(dir, `${host}.yaml`)], {
      logFile: join(dir, `${host}.log`),
    }),
  );
  await waitFor(`${host}'s admin endpoint`, () => adminGet(host, '/live'), 10_000);
}

function serviceYaml(name: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports:\n    - port: 80\n      targetPort: 8080\n      protocol: tcp\n`,
  );
  return file;
}

beforeAll(async () => {
  requireRootAndTools(['ip', 'curl']);
  dir = mkdtempSync(join(tmpdir(), 'weft-cp3-'));
  chmodSync(dir, 0o755);
  lab = await Lab.up({
    name: `cpa${randomBytes(2).toString('hex')}`,
    hosts: [{ name: 'cp' }, ...AGENTS.map((name) => ({ name }))],
  });
  writeFileSync(
    join(dir, 'cp.yaml'),
    JSON.stringify({
      dataDir: join(dir, 'cp'),
      advertise: [lab.host('cp').address],
      logLevel: 'info',
    }),
  );
  for (const host of AGENTS) {
    lab.spawn(host, [process.execPath, BANNER, host, '8080', '8081'], {
      logFile: join(dir, `${host}.banner.log`),
    });
  }
  await startControlPlane();
  await weft(['apply', '-f', serviceYaml('echo'), '-f', serviceYaml('web')]);
});

afterAll(async () => {
  for (const child of agents.values()) await stopProcess(child);
  await stopProcess(cpProcess);
  await lab?.down();
  if (dir && !process.env.WEFT_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
});

describe('three agents and one control plane in lab hosts', () => {
  it('each agent joins with its own token and gets its node and workload certificates', async () => {
    for (const host of AGENTS) {
      // a3 may also serve orders: a later test registers a workload of it there.
      const services = [
        ...workloads[host].map((w) => w.service),
        ...(host === 'a3' ? ['orders'] : []),
      ];
      const out = await weft([
        'token',
        'create',
        '--node',
        host,
        '--services',
        services.join(','),
        '--ttl',
        '10m',
        '--description',
        `test ${host}`,
      ]);
      const token = /^token:\s+(\S+)/m.exec(out)?.[1];
      const caPin = /^CA pin:\s+([0-9a-f]{64})/m.exec(out)?.[1];
      expect(token, out).toBeDefined();
      joinWith.set(host, { token: token!, caPin: caPin! });
      writeAgentConfig(host);
    }
    await Promise.all(AGENTS.map(startAgent));
    for (const host of AGENTS) {
      const certs = await waitFor(
        `${host}'s certificates`,
        async () => {
          const r = await adminGet<{ certificates: CertView[] }>(host, '/certs');
          return r && r.body.certificates.length === 2 ? r.body.certificates : undefined;
        },
        15_000,
      );
      expect(certs.map((c) => c.spiffeId).sort()).toEqual([
        `spiffe://weft.local/node/${host}`,
        `spiffe://weft.local/svc/${workloads[host][0]!.service}`,
      ]);
    }
    await allAgentsSee(
      'every endpoint',
      (e) => endpointsOf(e, 'echo').length === 2 && endpointsOf(e, 'web').length === 1,
      10_000,
    );
  });

  it('every agent sees a new Service within 1 s of `weft apply`', async () => {
    await weft(['apply', '-f', serviceYaml('orders')]);
    await allAgentsSee(
      'Service orders with a virtual IP',
      (e) => /^240\.240\./.test(e.services.orders?.vip ?? ''),
      1_000,
    );
  });

  it('every agent sees a workload registered, and a workload gone, within 1 s', async () => {
    const a3 = lab.host('a3').address;
    workloads.a3 = [...workloads.a3, { service: 'orders', port: 8081 }];
    writeAgentConfig('a3');
    agents.get('a3')!.kill('SIGHUP');
    // The clock starts when the control plane has stored the registration (it is what a
    // `weft get workloads` shows), so the budget covers the fan-out to every agent.
    await waitFor(
      'a3-orders-8081 stored',
      async () =>
        (await weft(['get', 'workloads'])).includes('a3-orders-8081') ? true : undefined,
      5_000,
    );
    await allAgentsSee(
      'the orders endpoint on a3',
      (e) => endpointsOf(e, 'orders').includes(`a3/${a3}:8081`),
      1_000,
    );

    workloads.a3 = workloads.a3.filter((w) => w.service !== 'orders');
    writeAgentConfig('a3');
    agents.get('a3')!.kill('SIGHUP');
    await waitFor(
      'a3-orders-8081 gone',
      async () =>
        (await weft(['get', 'workloads'])).includes('a3-orders-8081') ? undefined : true,
      5_000,
    );
    await allAgentsSee('no orders endpoint', (e) => endpointsOf(e, 'orders').length === 0, 1_000);
    // The certificate for the service that left this host is gone too.
    const certs = await adminGet<{ certificates: CertView[] }>('a3', '/certs');
    expect(certs?.body.certificates.map((c) => c.spiffeId)).not.toContain(
      'spiffe://weft.local/svc/orders',
    );
  });

  let version = 0;
  const staleVersion = new Map<string, number>();

  /**
   * The version every agent holds once the control plane has nothing more in flight: the same
   * on all agents for a whole second. Changes keep coming for a moment after the last test
   * (a health report of a workload that just moved, say), so a version read from one agent at
   * one instant may already be behind.
   */
  async function settledVersion(): Promise<number> {
    let last = -1;
    let since = Date.now();
    return waitFor(
      'one version on every agent for 1 s',
      async () => {
        const versions = await Promise.all(
          AGENTS.map(
            async (h) => (await adminGet<ConfigDumpView>(h, '/config_dump'))?.body.version,
          ),
        );
        const agreed = versions.every((v) => v === versions[0]) ? versions[0]! : -1;
        if (agreed !== last) {
          last = agreed;
          since = Date.now();
          return undefined;
        }
        return agreed >= 0 && Date.now() - since >= 1_000 ? agreed : undefined;
      },
      20_000,
    );
  }

  it('agents keep their snapshot and certificates when the control plane dies, and say they are stale', async () => {
    version = await settledVersion();
    await stopProcess(cpProcess, 'SIGKILL');
    for (const host of AGENTS) {
      const ready = await waitFor(
        `${host} stale`,
        async () => {
          const r = await adminGet<ReadyView>(host, '/ready');
          return r?.body.state === 'stale' ? r : undefined;
        },
        10_000,
      );
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ ready: true, stale: true });
      // What the agent held when the control plane died: the settled version, or one a change
      // sent in the last instant brought.
      expect(ready.body.version).toBeGreaterThanOrEqual(version);
      staleVersion.set(host, ready.body.version);
      const certs = await adminGet<{ certificates: CertView[] }>(host, '/certs');
      expect(certs?.body.certificates).toHaveLength(2);
      const endpoints = await adminGet<EndpointsView>(host, '/endpoints');
      expect(endpointsOf(endpoints!.body, 'echo')).toHaveLength(2);
    }
  });

  it('an agent restarted while the control plane is down serves stale state from its cache', async () => {
    await stopProcess(agents.get('a2'));
    await startAgent('a2');
    const ready = await adminGet<ReadyView>('a2', '/ready');
    expect(ready?.status).toBe(200);
    expect(ready?.body).toMatchObject({
      ready: true,
      stale: true,
      version: staleVersion.get('a2'),
    });
    const endpoints = await adminGet<EndpointsView>('a2', '/endpoints');
    expect(endpointsOf(endpoints!.body, 'echo')).toHaveLength(2);
    expect(endpoints!.body.services.orders).toBeDefined();
    const certs = await adminGet<{ certificates: CertView[] }>('a2', '/certs');
    expect(certs?.body.certificates.map((c) => c.spiffeId).sort()).toEqual([
      'spiffe://weft.local/node/a2',
      'spiffe://weft.local/svc/echo',
    ]);
    const status = await lab.exec('a2', [process.execPath, WEFT_CLI, 'status']);
    expect(status.stdout).toMatch(/STALE/);
  });

  it('when the control plane returns, every stream resumes and the agents converge', async () => {
    await startControlPlane();
    // Reconnects follow the agents' backoff (full jitter, capped at 10 s).
    for (const host of AGENTS) {
      await waitFor(
        `${host} connected`,
        async () => {
          const r = await adminGet<ReadyView>(host, '/ready');
          return r?.body.state === 'connected' ? true : undefined;
        },
        45_000,
      );
    }
    await weft(['apply', '-f', serviceYaml('payments')]);
    await allAgentsSee('Service payments', (e) => e.services.payments !== undefined, 1_000);
    const versions = await Promise.all(
      AGENTS.map(async (h) => (await adminGet<ConfigDumpView>(h, '/config_dump'))!.body.version),
    );
    expect(new Set(versions).size).toBe(1);
    expect(versions[0]).toBeGreaterThan(version);
  });
});
