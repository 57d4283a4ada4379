// The demo that `weft lab up` builds without a spec: a control plane on host `cp`, and three
// nodes that join it with one-time tokens, capture their traffic and run agents. node2 and
// node3 serve `echo` (HTTP, answers with its host's name), node3 also `banner` (an opaque,
// server-speaks-first TCP service), and node1 runs a client that calls http://echo.mesh/.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';
import { Lab } from './lab.js';
import { type LabSpec, validateLabSpec } from './spec.js';
import { ensureUser } from './users.js';

/** The `weft` launcher of this checkout (the lab runs the same build as the caller). */
const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));
const DEMO = fileURLToPath(new URL('../../scripts/demo/', import.meta.url));
const weft = (...args: string[]) => [process.execPath, WEFT_BIN, ...args];

const NODES = ['node1', 'node2', 'node3'] as const;
type Node = (typeof NODES)[number];

interface DemoWorkload {
  service: string;
  port: number;
  command: string[];
}

const echo: DemoWorkload = {
  service: 'echo',
  port: 8080,
  command: [process.execPath, join(DEMO, 'echo-server.mjs'), '8080'],
};
const banner: DemoWorkload = {
  service: 'banner',
  port: 7000,
  command: [process.execPath, join(DEMO, 'banner-server.mjs'), '7000'],
};
const workloadsOf: Record<Node, DemoWorkload[]> = { node1: [], node2: [echo], node3: [echo, banner] };

export function demoLabSpec(): LabSpec {
  return validateLabSpec({ name: 'demo', hosts: [{ name: 'cp' }, ...NODES.map((name) => ({ name }))] }, 'demo lab spec');
}

/** Builds the demo and returns the running lab. */
export async function upDemo(): Promise<Lab> {
  const spec = demoLabSpec();
  const weftUser = await ensureUser('weft');
  await ensureUser('weftapp');
  const lab = await Lab.up(spec);
  try {
    const cpDir = join(lab.dir, 'cp');
    mkdirSync(cpDir, { recursive: true, mode: 0o700 });
    await lab.startProcess('cp', {
      name: 'controlplane',
      command: weft('controlplane', '--data-dir', cpDir),
    });
    const admin = ['--server', '127.0.0.1:15012', '--credentials', join(cpDir, 'admin')];
    await waitUntil('the control plane', () => lab.exec('cp', weft('get', 'services', ...admin), { allowFailure: true }).then((r) => r.exitCode === 0));
    const resources = join(DEMO, 'resources.yaml');
    await lab.exec('cp', weft('apply', '-f', resources, ...admin));

    const cpAddress = `${lab.host('cp').address}:15012`;
    for (const node of NODES) {
      const out = (await lab.exec('cp', weft('token', 'create', '--ttl', '1h', ...admin))).stdout;
      const token = /^token:\s+(\S+)/m.exec(out)?.[1];
      const caPin = /^CA pin:\s+(\S+)/m.exec(out)?.[1];
      if (!token || !caPin) throw new WeftError('WEFT_E_LAB', `weft token create printed no token: ${out}`);
      // Each host's agent keeps its state apart: the namespaces share one filesystem.
      const dataDir = join(lab.dir, node);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      chownSync(dataDir, weftUser.uid, weftUser.gid);
      const config = join(lab.dir, `${node}.agent.yaml`);
      writeFileSync(
        config,
        JSON.stringify(
          {
            hostname: node,
            dataDir,
            addresses: [lab.host(node).address],
            controlPlane: { address: cpAddress, token, caPin },
            workloads: workloadsOf[node].map((w) => ({ service: w.service, port: w.port, user: 'weftapp' })),
            capture: { dns: { enabled: true } },
          },
          null,
          2,
        ),
      );
      chmodSync(config, 0o640);
      chownSync(config, 0, weftUser.gid);
      await lab.exec(node, weft('redirect', 'install', '--config', config));
      await lab.startProcess(node, { name: 'agent', command: weft('agent', '--config', config), user: 'weft' });
      for (const w of workloadsOf[node]) {
        await lab.startProcess(node, { name: w.service, command: w.command, user: 'weftapp' });
      }
    }
    await lab.startProcess('node1', {
      name: 'client',
      command: ['sh', '-c', 'while sleep 2; do curl -s --max-time 2 http://echo.mesh/ || echo "curl failed: $?"; done'],
      user: 'weftapp',
    });
    return lab;
  } catch (err) {
    await lab.down().catch(() => undefined);
    throw err;
  }
}

async function waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new WeftError('WEFT_E_LAB', `${what} did not come up within ${timeoutMs / 1000} s`);
}
