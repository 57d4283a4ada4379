// The agent's connect to a local application from the caller's address, against the real
// kernel in throw-away namespaces (a server host and a caller host on a veth pair): with the
// reply path `weft redirect install` sets up, the server sees the caller; without it, or
// without CAP_NET_ADMIN, the agent connects from its own address, says why once, and the
// connection still works.
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { inNs, Namespaces, Scratch, weft } from './redirect-helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/local-connect.mjs', import.meta.url));
const SERVER = '10.203.0.1';
const CALLER = '10.203.0.2';
const APP = `${SERVER}:8080`;
const SERVER6 = 'fd00:203::1';
const CALLER6 = 'fd00:203::2';

const namespaces = new Namespaces();
const scratch = new Scratch();
let config = '';

interface Outcome {
  problem: string | null;
  preserving: boolean;
  results: Array<{ seen?: string; preserved?: boolean; error?: string; codes?: string[] }>;
  logs: Array<{ level: number; msg: string; reason?: string }>;
}

/** A server host and a caller host joined by a veth pair; returns the server's namespace. */
async function hosts(): Promise<string> {
  const server = await namespaces.create();
  const caller = await namespaces.create();
  await execa('ip', ['-n', server, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  await execa('ip', ['-n', server, 'link', 'set', 'v1', 'netns', caller]);
  await execa('ip', ['-n', server, 'addr', 'add', `${SERVER}/24`, 'dev', 'v0']);
  await execa('ip', ['-n', caller, 'addr', 'add', `${CALLER}/24`, 'dev', 'v1']);
  await execa('ip', ['-n', server, 'addr', 'add', `${SERVER6}/64`, 'dev', 'v0', 'nodad']);
  await execa('ip', ['-n', caller, 'addr', 'add', `${CALLER6}/64`, 'dev', 'v1', 'nodad']);
  await execa('ip', ['-n', server, 'link', 'set', 'v0', 'up']);
  await execa('ip', ['-n', caller, 'link', 'set', 'v1', 'up']);
  return server;
}

async function run(ns: string, opts: object, prefix: string[] = asAgent): Promise<Outcome> {
  const r = await inNs(ns, [...prefix, process.execPath, FIXTURE, JSON.stringify(opts)]);
  if (r.exitCode !== 0) throw new Error(`local-connect.mjs exited ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Outcome;
}

const warnings = (o: Outcome) => o.logs.filter((l) => l.level === 40);
// The fixture runs as the agent would: as capture.agentUser (so its own connections are not
// captured), with CAP_NET_ADMIN as its unit grants, or without it.
const nobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];
const asAgent = [...nobody, '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--'];
const asNobody = [...nobody, '--'];

beforeAll(async () => {
  requireRootAndTools(['ip', 'iptables', 'setpriv']);
  await scratch.init();
  config = await scratch.file('agent.yaml', 'capture:\n  agentUser: nobody\n');
});

afterAll(async () => {
  await namespaces.removeAll();
  await scratch.remove();
});

describe('with the reply path installed', () => {
  let ns: string;
  beforeAll(async () => {
    ns = await hosts();
    const r = await weft(ns, ['redirect', 'install', '--config', config]);
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it("the application sees the caller's address, on every connect", async () => {
    const o = await run(ns, {
      listen: APP,
      target: APP,
      client: `${CALLER}:40312`,
      check: true,
      connects: 3,
      timeoutMs: 5_000,
    });
    expect(o.problem).toBeNull();
    expect(o.results).toHaveLength(3);
    for (const r of o.results) {
      expect(r.preserved).toBe(true);
      expect(r.seen).toMatch(new RegExp(`^${CALLER.replace(/\./g, '\\.')}:\\d+$`));
      expect(r.seen).not.toBe(`${CALLER}:40312`); // never the caller's own port
    }
    expect(o.preserving).toBe(true);
    expect(warnings(o)).toEqual([]);
  });

  it("over IPv6 too, the application sees the caller's address", async () => {
    const app6 = `${SERVER6}:8080`;
    const o = await run(ns, {
      listen: app6,
      target: app6,
      client: `${CALLER6}:40312`,
      check: true,
      connects: 2,
      timeoutMs: 5_000,
    });
    expect(o.results.map((r) => [r.preserved, r.seen?.replace(/:\d+$/, '')])).toEqual([
      [true, CALLER6],
      [true, CALLER6],
    ]);
    expect(warnings(o)).toEqual([]);
  });

  it("a refused connect fails as it would from the agent's address, and preserving stays on", async () => {
    const o = await run(ns, {
      target: `${SERVER}:8081`,
      client: `${CALLER}:1`,
      check: true,
      connects: 1,
      timeoutMs: 5_000,
    });
    expect(o.results[0]!.codes).toContain('ECONNREFUSED');
    expect(o.preserving).toBe(true);
  });

  it("without CAP_NET_ADMIN the host check says so, and the agent's address is used", async () => {
    const o = await run(
      ns,
      {
        listen: APP,
        target: APP,
        client: `${CALLER}:1`,
        check: true,
        connects: 1,
        timeoutMs: 5_000,
      },
      asNobody,
    );
    expect(o.problem).toMatch(/lacks CAP_NET_ADMIN/);
    expect(o.results[0]).toMatchObject({
      preserved: false,
      seen: expect.stringMatching(/^10\.203\.0\.1:/),
    });
    expect(warnings(o).map((l) => l.reason)).toEqual([o.problem]);
  });

  it('the kernel refusing the socket (EPERM) turns preserving off once, and the connect still works', async () => {
    const o = await run(
      ns,
      {
        listen: APP,
        target: APP,
        client: `${CALLER}:1`,
        check: false,
        connects: 2,
        timeoutMs: 5_000,
      },
      asNobody,
    );
    expect(o.results.map((r) => [r.preserved, r.seen?.split(':')[0]])).toEqual([
      [false, SERVER],
      [false, SERVER],
    ]);
    expect(o.preserving).toBe(false);
    const warned = warnings(o);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.reason).toMatch(/EPERM/);
  });
});

describe('without the reply path', () => {
  let ns: string;
  beforeAll(async () => {
    ns = await hosts();
  });

  it('the host check finds the routing missing, and the agent connects from its own address', async () => {
    const o = await run(ns, {
      listen: APP,
      target: APP,
      client: `${CALLER}:1`,
      check: true,
      connects: 1,
      timeoutMs: 5_000,
    });
    expect(o.problem).toMatch(/the reply routing is not installed .*weft redirect install/);
    expect(o.results[0]).toMatchObject({ preserved: false });
    expect(o.results[0]!.seen?.split(':')[0]).toBe(SERVER);
  });

  it('unchecked, a connect that gets no answer is retried from the agent, and preserving is turned off', async () => {
    const o = await run(ns, {
      listen: APP,
      target: APP,
      client: `${CALLER}:1`,
      check: false,
      connects: 2,
      timeoutMs: 1_000,
    });
    expect(o.results.map((r) => [r.preserved, r.seen?.split(':')[0]])).toEqual([
      [false, SERVER],
      [false, SERVER],
    ]);
    expect(o.preserving).toBe(false);
    const warned = warnings(o);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.reason).toMatch(/reply routing is missing/);
  });

  it('an aborted connect stops at once and leaves preserving on', async () => {
    const o = await run(ns, {
      listen: APP,
      target: APP,
      client: `${CALLER}:1`,
      check: false,
      connects: 1,
      timeoutMs: 60_000,
      abortAfterMs: 100,
    });
    expect(o.results[0]!.codes).toContain('ABORT_ERR');
    expect(o.preserving).toBe(true);
  });
});
