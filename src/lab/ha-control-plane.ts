// The HA lab's control plane: three etcd members (Debian's etcd binary, a real three-member
// cluster over the lab network, each member in its own host) and three `weft controlplane
// --store etcd` replicas, each in its own host. The argv of a member and the endpoints are
// pure; starting them drives the real binaries, as an operator would.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { type Lab, requireTools } from './lab.js';

export const ETCD_HOSTS = ['etcd1', 'etcd2', 'etcd3'] as const;
export const REPLICA_HOSTS = ['cp1', 'cp2', 'cp3'] as const;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

export interface EtcdMember {
  /** The lab host and the member's name. */
  name: string;
  address: string;
}

const clientUrl = (m: EtcdMember) => `http://${m.address}:${ETCD_CLIENT_PORT}`;
const peerUrl = (m: EtcdMember) => `http://${m.address}:${ETCD_PEER_PORT}`;

/** The client URLs of every member, as `--etcd-endpoints` takes them. */
export function etcdEndpoints(members: readonly EtcdMember[]): string[] {
  return members.map(clientUrl);
}

/**
 * One member's command line. The same argv starts it again after a kill: etcd reads the
 * cluster from its data directory then and ignores the --initial-* flags. It also listens on
 * the host's loopback, so `etcdctl` run inside the host needs no flags.
 */
export function etcdMemberArgv(
  member: EtcdMember,
  cluster: readonly EtcdMember[],
  dataDir: string,
  clusterToken: string,
): string[] {
  return [
    'etcd',
    `--name=${member.name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl(member)},http://127.0.0.1:${ETCD_CLIENT_PORT}`,
    `--advertise-client-urls=${clientUrl(member)}`,
    `--listen-peer-urls=${peerUrl(member)}`,
    `--initial-advertise-peer-urls=${peerUrl(member)}`,
    `--initial-cluster=${cluster.map((m) => `${m.name}=${peerUrl(m)}`).join(',')}`,
    `--initial-cluster-token=${clusterToken}`,
    '--initial-cluster-state=new',
    '--logger=zap',
    '--log-level=warn',
  ];
}

/** The process name of an etcd member and of a replica in their hosts. */
export const ETCD_PROCESS = 'etcd';
export const REPLICA_PROCESS = 'controlplane';

export class HaControlPlane {
  readonly members: EtcdMember[];

  constructor(
    private readonly lab: Lab,
    /** argv prefix that runs this checkout's weft: [node, bin/weft]. */
    private readonly weft: readonly string[],
  ) {
    this.members = ETCD_HOSTS.map((name) => ({ name, address: lab.host(name).address }));
  }

  /** The replicas' gRPC addresses, as agents list them in controlPlane.addresses. */
  get replicaAddresses(): string[] {
    return REPLICA_HOSTS.map((h) => `${this.lab.host(h).address}:15012`);
  }

  dataDir(host: string): string {
    return join(this.lab.dir, host);
  }

  /** Starts the three members and waits until the cluster has a leader and answers. */
  async startEtcd(): Promise<void> {
    requireTools(['etcd', 'curl']);
    for (const m of this.members) await this.startMember(m.name, { wait: false });
    for (const m of this.members) await this.waitMember(m.name);
  }

  /** Starts (or starts again, on its data directory) one member. */
  async startMember(host: string, opts: { wait?: boolean } = {}): Promise<void> {
    const member = this.members.find((m) => m.name === host);
    if (member === undefined)
      throw new WeftError('WEFT_E_NOT_FOUND', `no etcd member ${host} (${ETCD_HOSTS.join(', ')})`);
    const dir = this.dataDir(host);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await this.lab.startProcess(host, {
      name: ETCD_PROCESS,
      command: etcdMemberArgv(member, this.members, join(dir, 'data'), `weft-${this.lab.name}`),
    });
    if (opts.wait !== false) await this.waitMember(host);
  }

  /** Until the member says it is healthy (it has a leader and commits). */
  private async waitMember(host: string): Promise<void> {
    await waitFor(`etcd member ${host}`, async () => {
      const r = await this.lab.exec(
        host,
        ['curl', '-s', '--max-time', '2', `http://127.0.0.1:${ETCD_CLIENT_PORT}/health`],
        { allowFailure: true },
      );
      return r.exitCode === 0 && r.stdout.includes('"health":"true"');
    });
  }

  /**
   * Starts the replicas, all with the lab's key-encryption key (README "Control plane on
   * etcd"): the first makes the mesh CA and seals its key into etcd; the others open it there.
   */
  async startReplicas(): Promise<void> {
    const kek = this.kekFile();
    if (!existsSync(kek)) writeFileSync(kek, randomBytes(32), { mode: 0o600 });
    for (const host of REPLICA_HOSTS) await this.startReplica(host);
  }

  /** The KEK every replica reads: 32 random bytes, made with the lab, removed with it. */
  kekFile(): string {
    return join(this.lab.dir, 'ca-kek');
  }

  /** Starts (or starts again) one replica and waits until its /readyz says ready. */
  async startReplica(host: string): Promise<void> {
    const dir = this.dataDir(host);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await this.lab.startProcess(host, {
      name: REPLICA_PROCESS,
      command: [
        ...this.weft,
        'controlplane',
        '--data-dir',
        dir,
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcdEndpoints(this.members).join(','),
        '--ca-kek-file',
        this.kekFile(),
      ],
      // `npm run bench -- --ha-only --profile`: each replica writes a V8 CPU profile there when
      // it exits (a graceful stop; a replica killed with SIGKILL writes none).
      ...(process.env.WEFT_LAB_CPU_PROF_DIR
        ? {
            env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.WEFT_LAB_CPU_PROF_DIR}` },
          }
        : {}),
    });
    await waitFor(`control plane replica ${host}`, async () => {
      const r = await this.lab.exec(
        host,
        ['curl', '-sf', '--max-time', '2', 'http://127.0.0.1:15014/readyz'],
        { allowFailure: true },
      );
      return r.exitCode === 0;
    });
  }
}

async function waitFor(what: string, ready: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new WeftError('WEFT_E_LAB', `${what} did not come up within ${timeoutMs / 1000} s`);
}
