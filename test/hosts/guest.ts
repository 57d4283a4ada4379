// One test host: the cached Debian rootfs booted with `systemd-nspawn --boot` inside a lab
// host's network namespace. Changes go to a tmpfs overlay (--volatile=overlay), so every boot
// starts from the pristine image; commands run in the guest's namespaces through nsenter.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { type RunResult, run } from '../../src/sys/run.js';

const GUEST_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'HOME=/root',
  'LANG=C.UTF-8',
];

export interface GuestOptions {
  machine: string;
  rootfs: string;
  netns: string;
  /** host path -> guest path, read-only. */
  binds: Record<string, string>;
  logFile: string;
}

export class Guest {
  private constructor(
    readonly machine: string,
    private readonly nspawn: ChildProcess,
    readonly pid: number,
  ) {}

  static async boot(opts: GuestOptions): Promise<Guest> {
    const args = [
      '-D',
      opts.rootfs,
      '--volatile=overlay',
      // No systemd-machined on the machine running the tests: do not register with it.
      '--register=no',
      '--keep-unit',
      // Its own network namespace, so the guest's root may own it (iptables): nspawn drops
      // CAP_NET_ADMIN unless told, even with --network-namespace-path.
      '--capability=CAP_NET_ADMIN',
      '--boot',
      `--machine=${opts.machine}`,
      `--network-namespace-path=/run/netns/${opts.netns}`,
      '--console=passive',
      ...Object.entries(opts.binds).map(([from, to]) => `--bind-ro=${from}:${to}`),
    ];
    const log = createWriteStream(opts.logFile);
    const nspawn = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    nspawn.stdout?.pipe(log, { end: false });
    nspawn.stderr?.pipe(log, { end: false });
    const pid = await initPid(nspawn, opts.logFile);
    const guest = new Guest(opts.machine, nspawn, pid);
    // "degraded" is fine (some units need hardware a container lacks); "starting" is not.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = await guest.exec(['systemctl', 'is-system-running'], { allowFailure: true });
      if (/^(running|degraded)/.test(r.stdout)) return guest;
      await sleep(250);
    }
    throw new Error(`${opts.machine} did not finish booting; see ${opts.logFile}`);
  }

  /** Runs argv as root in the guest, with a clean environment. */
  exec(
    argv: readonly string[],
    opts: { allowFailure?: boolean; timeoutMs?: number; input?: string } = {},
  ): Promise<RunResult> {
    return run(
      'nsenter',
      ['-t', String(this.pid), '-a', '--', 'env', '-i', ...GUEST_ENV, ...argv],
      {
        allowFailure: opts.allowFailure,
        timeoutMs: opts.timeoutMs ?? 120_000,
        input: opts.input,
      },
    );
  }

  sh(script: string, opts: { allowFailure?: boolean; timeoutMs?: number } = {}) {
    return this.exec(['bash', '-c', script], opts);
  }

  /** A long-running command in the guest (a load client); the caller reads its stdout. */
  spawn(argv: readonly string[]): ChildProcess {
    return spawn(
      'nsenter',
      ['-t', String(this.pid), '-a', '--', 'env', '-i', ...GUEST_ENV, ...argv],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  }

  /** Powers the guest off (SIGTERM to nspawn asks its init to shut down), then kills it. */
  async stop(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) return;
    const exited = new Promise((resolve) => this.nspawn.once('exit', resolve));
    this.nspawn.kill('SIGTERM');
    const timer = setTimeout(() => this.nspawn.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The container's init: nspawn's child (or grandchild) whose command is systemd. */
async function initPid(nspawn: ChildProcess, logFile: string): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (nspawn.exitCode !== null) {
      throw new Error(
        `systemd-nspawn exited with ${nspawn.exitCode}: ${readFileSync(logFile, 'utf8')}`,
      );
    }
    const children = descendants(nspawn.pid!);
    for (const pid of children) {
      const comm = safeRead(`/proc/${pid}/comm`).trim();
      if (comm === 'systemd') return pid;
    }
    await sleep(100);
  }
  throw new Error(`no init process under systemd-nspawn; see ${logFile}`);
}

function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = safeRead(`/proc/${entry}/stat`);
    // The command may hold spaces and parentheses: the fields start after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    parentOf.set(Number(entry), ppid);
  }
  const found: number[] = [];
  const wanted = new Set([root]);
  for (let depth = 0; depth < 3; depth += 1) {
    for (const [pid, ppid] of parentOf) {
      if (wanted.has(ppid) && !wanted.has(pid)) {
        wanted.add(pid);
        found.push(pid);
      }
    }
  }
  return found;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
