// A lab running the whole mesh: a control plane on host `cp` (or, with `ha`, three etcd members
// and three replicas on etcd: ha-control-plane.ts), and nodes that join it with one-time
// tokens (each naming its node and the services it serves), install capture and run agents and
// their workloads. The demo and the mesh tests build on it; it drives only the real CLI, as an
// operator would.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MASTER_NODE_FLAGS } from '../agent/node-flags.js';
import { CONTROL_PLANE_NODE_FLAGS } from '../controlplane/node-flags.js';
import { WeftError } from '../errors.js';
import type { RunResult } from '../sys/run.js';
import { ETCD_HOSTS, HaControlPlane, REPLICA_HOSTS } from './ha-control-plane.js';
import { Lab } from './lab.js';
import { ensureUser } from './users.js';

/** The `weft` launcher of this checkout (the lab runs the same build as the caller). */
export const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));
const weft = (...args: string[]) => [process.execPath, WEFT_BIN, ...args];

export interface MeshLabWorkload {
  service: string;
  port: number;
  /** The application's process name in the lab; default the service (set it when a node
   * runs several workloads of one service, one per port). */
  name?: string;
  /** The application: started as `user` (default weftapp) after the node's agent. */
  command: string[];
  user?: string;
}

export interface MeshLabNode {
  name: string;
  workloads?: MeshLabWorkload[];
}

export interface MeshLabOptions {
  /** Lab name (1-12 lowercase letters and digits). */
  name: string;
  nodes: MeshLabNode[];
  /** Resources applied before the nodes join (YAML files). */
  resourceFiles?: string[];
  /** Extra agent config merged into every node's (e.g. capture settings). */
  agentConfig?: Record<string, unknown>;
  /**
   * Three etcd members (hosts etcd1-3) and three control plane replicas on them (cp1-3)
   * instead of one control plane on `cp`; agents list the three replicas.
   */
  ha?: boolean;
}

export class MeshLab {
  /** The etcd members and replicas of an HA lab. */
  readonly ha: HaControlPlane | undefined;

  private constructor(
    readonly lab: Lab,
    readonly options: MeshLabOptions,
  ) {
    // Replicas start with the control plane's V8 flags, as the systemd unit starts them.
    this.ha =
      options.ha === true
        ? new HaControlPlane(lab, [process.execPath, ...CONTROL_PLANE_NODE_FLAGS, WEFT_BIN])
        : undefined;
  }

  /** The hosts that run a control plane: cp, or the replicas cp1-3. */
  get controlPlaneHosts(): string[] {
    return this.ha !== undefined ? [...REPLICA_HOSTS] : ['cp'];
  }

  /** The admin flags of CLI verbs run on the (first) control plane host. */
  get adminArgs(): string[] {
    return this.adminArgsOn(this.controlPlaneHosts[0]!);
  }

  /** The admin flags of CLI verbs run on a control plane host, for its own control plane. */
  adminArgsOn(host: string): string[] {
    return ['--server', '127.0.0.1:15012', '--credentials', join(this.lab.dir, host, 'admin')];
  }

  configFile(node: string): string {
    return join(this.lab.dir, `${node}.agent.yaml`);
  }

  /** Runs `weft ARGS` on a host (admin verbs get the control plane's credentials on cp). */
  weft(
    host: string,
    args: string[],
    opts: { allowFailure?: boolean; user?: string } = {},
  ): Promise<RunResult> {
    return this.lab.exec(host, weft(...args), opts);
  }

  /** `weft apply -f FILE` on a control plane host (default: the first). */
  apply(file: string, host = this.controlPlaneHosts[0]!): Promise<RunResult> {
    return this.weft(host, ['apply', '-f', file, ...this.adminArgsOn(host)]);
  }

  /** What agents put in controlPlane: one address, or the replicas' (HA). */
  controlPlaneConfig(): { address: string } | { addresses: string[] } {
    if (this.ha !== undefined) return { addresses: this.ha.replicaAddresses };
    return { address: `${this.lab.host('cp').address}:15012` };
  }

  async startControlPlane(): Promise<void> {
    if (this.ha !== undefined) {
      await this.ha.startEtcd();
      await this.ha.startReplicas();
      return;
    }
    const dir = join(this.lab.dir, 'cp');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await this.lab.startProcess('cp', {
      name: 'controlplane',
      // With its V8 flags, as the systemd unit starts it (controlplane/node-flags.ts).
      command: [
        process.execPath,
        ...CONTROL_PLANE_NODE_FLAGS,
        WEFT_BIN,
        'controlplane',
        '--data-dir',
        dir,
      ],
    });
    await waitUntil('the control plane', async () => {
      const r = await this.weft('cp', ['get', 'services', ...this.adminArgs], {
        allowFailure: true,
      });
      return r.exitCode === 0;
    });
  }

  async startAgent(node: string): Promise<void> {
    await this.lab.startProcess(node, {
      name: 'agent',
      // With the master's V8 flags, as the systemd unit starts it (agent/node-flags.ts).
      command: [
        process.execPath,
        ...MASTER_NODE_FLAGS,
        WEFT_BIN,
        'agent',
        '--config',
        this.configFile(node),
      ],
      user: 'weft',
      // As its systemd unit grants: IP_TRANSPARENT and SO_MARK need it.
      capabilities: ['net_admin'],
    });
  }

  static async up(options: MeshLabOptions): Promise<MeshLab> {
    const weftUser = await ensureUser('weft');
    await ensureUser('weftapp');
    const controlHosts = options.ha === true ? [...ETCD_HOSTS, ...REPLICA_HOSTS] : ['cp'];
    const lab = await Lab.up({
      name: options.name,
      hosts: [...controlHosts, ...options.nodes.map((n) => n.name)].map((name) => ({ name })),
    });
    const mesh = new MeshLab(lab, options);
    try {
      await mesh.startControlPlane();
      for (const file of options.resourceFiles ?? []) await mesh.apply(file);
      const cpHost = mesh.controlPlaneHosts[0]!;
      for (const node of options.nodes) {
        // Each token names its node and the services that node serves (placement).
        const services = [...new Set((node.workloads ?? []).map((w) => w.service))];
        const scope = [
          '--node',
          node.name,
          ...(services.length ? ['--services', services.join(',')] : []),
        ];
        const out = (
          await mesh.weft(cpHost, ['token', 'create', ...scope, '--ttl', '1h', ...mesh.adminArgs])
        ).stdout;
        const token = /^token:\s+(\S+)/m.exec(out)?.[1];
        const caPin = /^CA pin:\s+(\S+)/m.exec(out)?.[1];
        if (!token || !caPin)
          throw new WeftError('WEFT_E_LAB', `weft token create printed no token: ${out}`);
        // Each host's agent keeps its state apart: the namespaces share one filesystem.
        const dataDir = join(lab.dir, node.name);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        chownSync(dataDir, weftUser.uid, weftUser.gid);
        const config = {
          hostname: node.name,
          dataDir,
          addresses: [lab.host(node.name).address],
          controlPlane: { ...mesh.controlPlaneConfig(), token, caPin },
          workloads: (node.workloads ?? []).map((w) => ({
            service: w.service,
            port: w.port,
            user: w.user ?? 'weftapp',
            health: { intervalMs: 1_000 },
          })),
          heartbeatIntervalMs: 1_000,
          drainMs: 2_000,
          // The lab's hosts share the machine's cores: one worker each, unless a test asks.
          workers: 1,
          capture: { dns: { enabled: true } },
          ...options.agentConfig,
        };
        const file = mesh.configFile(node.name);
        writeFileSync(file, JSON.stringify(config, null, 2));
        chmodSync(file, 0o640);
        chownSync(file, 0, weftUser.gid);
        await mesh.weft(node.name, ['redirect', 'install', '--config', file]);
        await mesh.startAgent(node.name);
        for (const w of node.workloads ?? []) {
          await lab.startProcess(node.name, {
            name: w.name ?? w.service,
            command: w.command,
            user: w.user ?? 'weftapp',
          });
        }
      }
      return mesh;
    } catch (err) {
      await lab.down().catch(() => undefined);
      throw err;
    }
  }
}

export async function waitUntil(
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new WeftError('WEFT_E_LAB', `${what} did not come up within ${timeoutMs / 1000} s`);
}
