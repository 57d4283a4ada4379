// A running lab: builds hosts from a spec, runs commands and processes inside them, reports
// and tears down. Tests and benchmarks get their hosts here; `weft lab` is a thin shell on it.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, WeftError } from '../errors.js';
import { installHint, type RunResult, requireRoot, run } from '../sys/run.js';
import { ipBatch, netnsExists, netnsShell, writeNetnsEtc } from './netns.js';
import {
  isRunning,
  netnsArgv,
  type ProcessRef,
  readStartTime,
  STOP_GRACE_MS,
  SYSTEM_PATH,
  stopAll,
} from './processes.js';
import {
  type LabSpec,
  type LabSpecInput,
  type ProcessSpecInput,
  validateLabSpec,
  validateProcessSpec,
} from './spec.js';
import {
  DEFAULT_STATE_DIR,
  type LabProcess,
  type LabState,
  labDir,
  newState,
  readState,
  writeState,
} from './state.js';
import { type DownReport, teardownLab } from './teardown.js';
import { type LabHost, planTopology, type Topology } from './topology.js';
import { ensureUser, requireUser, type UserInfo, userEnv } from './users.js';

export interface LabOptions {
  /** Directory holding one `<lab>/` directory per lab; default /run/weft/lab. */
  stateDir?: string;
}

export interface ExecOptions {
  /** Run as this (existing) user instead of root. */
  user?: string;
  /** Written to the command's stdin. */
  input?: string;
  /** Added to the caller's environment, after WEFT_LAB and WEFT_LAB_HOST. */
  env?: Record<string, string>;
  /** Return a non-zero exit instead of throwing WEFT_E_LAB. */
  allowFailure?: boolean;
  /** Kill the command after this long (default 30 s, 0 for never). */
  timeoutMs?: number;
}

export interface SpawnOptions {
  /** Run as this (existing) user instead of root. */
  user?: string;
  /** Added to the caller's environment, after WEFT_LAB and WEFT_LAB_HOST. */
  env?: Record<string, string>;
  cwd?: string;
  /** Append stdout and stderr to this file instead of piping them. */
  logFile?: string;
  /**
   * Share the caller's stdio and process group, for interactive use (`weft lab exec`): a
   * process in another group would be stopped by SIGTTIN when it reads the terminal.
   */
  inheritStdio?: boolean;
}

export interface LabStatus {
  name: string;
  /** Every namespace of the lab exists. */
  up: boolean;
  stateDir: string;
  subnet: string;
  subnet6: string;
  gateway: string;
  gateway6: string;
  hosts: (LabHost & { present: boolean })[];
  processes: (LabProcess & { running: boolean })[];
}

type HostRef = string | LabHost;

export class Lab {
  readonly spec: LabSpec;
  /** This lab's directory: state.json and process logs. */
  readonly dir: string;
  private readonly topology: Topology;
  private readonly hostMap: Map<string, LabHost>;
  /** Children of spawn(), stopped by down() even though the state file does not list them. */
  private readonly children = new Set<ProcessRef>();

  private constructor(
    private state: LabState,
    private readonly stateDir: string,
  ) {
    this.spec = state.spec;
    this.dir = labDir(stateDir, state.name);
    this.topology = planTopology(state.spec);
    this.hostMap = new Map(
      this.topology.hosts.map(({ switchEnd: _, ...h }) => [h.name, h] as [string, LabHost]),
    );
  }

  /**
   * Builds the lab, after removing the leftovers of an earlier one of the same name. On
   * failure removes what it made and throws WEFT_E_LAB naming the step that failed.
   */
  static async up(spec: LabSpec | LabSpecInput, opts: LabOptions = {}): Promise<Lab> {
    requireRoot('building a lab');
    const resolved = validateLabSpec(spec);
    const users = resolved.hosts.flatMap((h) => h.processes.map((p) => p.user));
    requireTools(['ip', ...(users.some((u) => u !== 'root') ? ['setpriv'] : [])]);
    const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    await teardownLab(resolved.name, stateDir);

    const topo = planTopology(resolved);
    const state = newState(resolved, topo.switchNetns);
    state.namespaces = [topo.switchNetns, ...topo.hosts.map((h) => h.netns)];
    state.links = topo.hosts.map((h) => ({
      host: h.name,
      switchEnd: h.switchEnd,
      hostEnd: h.iface,
    }));
    // Recorded before anything is built, so a crash half way leaves a trail to clean.
    await writeState(stateDir, state);
    const lab = new Lab(state, stateDir);
    await lab.build(topo);
    return lab;
  }

  /** A lab brought up earlier (by this or another process), from its state file. */
  static async attach(name: string, opts: LabOptions = {}): Promise<Lab> {
    const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    const state = await readState(stateDir, name);
    if (!state) {
      throw new WeftError(
        'WEFT_E_NOT_FOUND',
        `lab ${name} is not up (no ${labDir(stateDir, name)}/state.json); start it with \`weft lab up\``,
      );
    }
    return new Lab(state, stateDir);
  }

  /** Tears down lab `name` whether or not its state survives; idempotent. */
  static async teardown(name: string, opts: LabOptions = {}): Promise<DownReport> {
    requireRoot('removing a lab');
    return teardownLab(name, opts.stateDir ?? DEFAULT_STATE_DIR);
  }

  get name(): string {
    return this.spec.name;
  }

  get gateway(): string {
    return this.spec.gateway;
  }

  get gateway6(): string {
    return this.spec.gateway6;
  }

  get switchNetns(): string {
    return this.topology.switchNetns;
  }

  host(ref: HostRef): LabHost {
    const name = typeof ref === 'string' ? ref : ref.name;
    const host = this.hostMap.get(name);
    if (!host) {
      const known = [...this.hostMap.keys()].join(', ');
      throw new WeftError(
        'WEFT_E_NOT_FOUND',
        `lab ${this.name} has no host "${name}" (hosts: ${known})`,
      );
    }
    return { ...host };
  }

  hosts(): LabHost[] {
    return [...this.hostMap.values()].map((h) => ({ ...h }));
  }

  /** Processes started with startProcess (or from the spec), as recorded in the state. */
  processes(): LabProcess[] {
    return this.state.processes.map((p) => ({ ...p }));
  }

  /** Runs argv inside a host to completion. Throws WEFT_E_LAB on a non-zero exit. */
  async exec(host: HostRef, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
    const h = this.host(host);
    const user = opts.user ? requireUser(opts.user) : undefined;
    const result = await run('ip', netnsArgv(h.netns, user, argv), {
      input: opts.input,
      allowFailure: true,
      timeoutMs: opts.timeoutMs,
      env: this.callerEnv(h, user, opts.env),
    });
    if (result.exitCode !== 0 && !opts.allowFailure) {
      const detail = result.stderr.trim().split('\n').slice(-3).join(' | ');
      throw new WeftError(
        'WEFT_E_LAB',
        `\`${argv.join(' ')}\` on ${h.name} exited with ${result.exitCode}${detail ? `: ${detail}` : ''}`,
      );
    }
    return result;
  }

  /**
   * Starts a long-running process inside a host and returns it at once. It runs in its own
   * process group (unless inheritStdio) and is stopped by down(), with everything it forked.
   */
  spawn(host: HostRef, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const h = this.host(host);
    const user = opts.user ? requireUser(opts.user) : undefined;
    const fd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
    let stdio: StdioOptions = fd === undefined ? 'pipe' : ['ignore', fd, fd];
    if (opts.inheritStdio) stdio = 'inherit';
    try {
      const child = spawn('ip', netnsArgv(h.netns, user, argv), {
        cwd: opts.cwd,
        env: { ...process.env, ...this.callerEnv(h, user, opts.env) },
        stdio,
        detached: !opts.inheritStdio,
      });
      const startTime = child.pid === undefined ? undefined : readStartTime(child.pid);
      if (child.pid !== undefined && startTime !== undefined) {
        const ref = { pid: child.pid, startTime };
        this.children.add(ref);
        child.once('exit', () => this.children.delete(ref));
      }
      return child;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * Starts a spec'd process detached: it outlives the calling process (the CLI), logs to
   * `<dir>/<host>.<name>.log`, and its pid and start time are recorded in the state.
   */
  async startProcess(host: HostRef, spec: ProcessSpecInput): Promise<LabProcess> {
    const h = this.host(host);
    const p = validateProcessSpec(spec, `process ${h.name}/${(spec as { name?: string }).name}`);
    const same = (r: LabProcess) => r.host === h.name && r.name === p.name;
    const existing = this.state.processes.find(same);
    if (existing && isRunning(existing)) {
      throw new WeftError(
        'WEFT_E_LAB',
        `${h.name}/${p.name} is already running as pid ${existing.pid}`,
      );
    }
    if (!existsSync(p.cwd))
      throw new WeftError('WEFT_E_LAB', `${h.name}/${p.name}: cwd ${p.cwd} does not exist`);
    const user = await ensureUser(p.user);
    await mkdir(this.dir, { recursive: true });
    const logFile = join(this.dir, `${h.name}.${p.name}.log`);
    const fd = openSync(logFile, 'a');
    // A clean environment: a service must not depend on the shell that ran `weft lab up`.
    const env = {
      PATH: SYSTEM_PATH,
      LANG: 'C.UTF-8',
      ...userEnv(user),
      ...labEnv(this.name, h),
      ...p.env,
    };
    let child: ChildProcess;
    try {
      child = spawn('ip', netnsArgv(h.netns, user, p.command, p.capabilities), {
        cwd: p.cwd,
        env,
        stdio: ['ignore', fd, fd],
        detached: true,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } finally {
      closeSync(fd);
    }
    child.unref();
    const record: LabProcess = {
      host: h.name,
      name: p.name,
      pid: child.pid!,
      startTime: readStartTime(child.pid!) ?? '', // '' never matches: it already exited
      user: user.name,
      command: p.command,
      logFile,
    };
    await this.updateState((s) => {
      s.processes = [...s.processes.filter((r) => !same(r)), record];
    });
    return { ...record };
  }

  /**
   * Kills one started process with SIGKILL (kill -9: no chance to say goodbye) and waits until
   * it is gone. False if it was not running.
   */
  async killProcess(host: HostRef, name: string): Promise<boolean> {
    const h = this.host(host);
    const record = this.state.processes.find((r) => r.host === h.name && r.name === name);
    if (!record)
      throw new WeftError('WEFT_E_NOT_FOUND', `lab ${this.name} has no process ${h.name}/${name}`);
    if (!isRunning(record)) return false;
    await stopAll([record], [], 0, 'SIGKILL');
    return true;
  }

  /** Stops one started process (SIGTERM, then SIGKILL after the grace). False if not running. */
  async stopProcess(host: HostRef, name: string, graceMs = STOP_GRACE_MS): Promise<boolean> {
    const h = this.host(host);
    const record = this.state.processes.find((r) => r.host === h.name && r.name === name);
    if (!record)
      throw new WeftError('WEFT_E_NOT_FOUND', `lab ${this.name} has no process ${h.name}/${name}`);
    if (!isRunning(record)) return false;
    await stopAll([record], [], graceMs);
    return true;
  }

  async status(): Promise<LabStatus> {
    const hosts = await Promise.all(
      this.hosts().map(async (h) => ({ ...h, present: await netnsExists(h.netns) })),
    );
    const switchPresent = await netnsExists(this.switchNetns);
    return {
      name: this.name,
      up: switchPresent && hosts.every((h) => h.present),
      stateDir: this.dir,
      subnet: this.spec.subnet,
      subnet6: this.spec.subnet6,
      gateway: this.gateway,
      gateway6: this.gateway6,
      hosts,
      processes: this.state.processes.map((p) => ({ ...p, running: isRunning(p) })),
    };
  }

  /** Stops every process, deletes the namespaces, /etc/netns dirs and state. Idempotent. */
  async down(): Promise<DownReport> {
    const report = await teardownLab(this.name, this.stateDir, [...this.children]);
    this.children.clear();
    return report;
  }

  private async build(topo: Topology): Promise<void> {
    let step = 'creating namespaces and veth pairs';
    try {
      await ipBatch(topo.create);
      step = 'configuring the switch and host interfaces';
      await Promise.all([
        ipBatch(topo.switchConfig, topo.switchNetns),
        netnsShell(topo.switchNetns, topo.switchSysctl),
        ...[...topo.hostConfig].map(([netns, lines]) => ipBatch(lines, netns)),
      ]);
      step = 'writing /etc/netns files';
      const dirs: string[] = [];
      for (const [netns, files] of topo.etcFiles) dirs.push(await writeNetnsEtc(netns, files));
      await this.updateState((s) => {
        s.etcDirs = dirs;
      });
      for (const host of this.spec.hosts) {
        for (const argv of host.setup) {
          step = `setting up ${host.name}: ${argv.join(' ')}`;
          await this.exec(host.name, argv, { timeoutMs: 60_000 });
        }
        for (const p of host.processes) {
          step = `starting process ${host.name}/${p.name}`;
          await this.startProcess(host.name, p);
        }
      }
    } catch (err) {
      await teardownLab(this.name, this.stateDir).catch(() => undefined);
      throw new WeftError(
        'WEFT_E_LAB',
        `lab ${this.name}: ${step} failed: ${describeError(err)}; what was built has been removed`,
        { cause: err },
      );
    }
  }

  /** Read-modify-write from disk: another process (the CLI) may have started processes. */
  private async updateState(change: (s: LabState) => void): Promise<void> {
    const current = (await readState(this.stateDir, this.name)) ?? this.state;
    change(current);
    await writeState(this.stateDir, current);
    this.state = current;
  }

  /** exec/spawn keep the caller's environment; a non-root user gets its own identity. */
  private callerEnv(h: LabHost, user: UserInfo | undefined, extra: Record<string, string> = {}) {
    const asUser = user && user.uid !== 0 ? { ...userEnv(user), PATH: SYSTEM_PATH } : {};
    return { ...asUser, ...labEnv(this.name, h), ...extra };
  }
}

/** Lets a process (an agent, say) know which lab host it is on. */
function labEnv(lab: string, h: LabHost): Record<string, string> {
  return { WEFT_LAB: lab, WEFT_LAB_HOST: h.name };
}

/** A PATH lookup in-process: spawning `sh -c command -v` costs more than building a host. */
function onPath(tool: string): boolean {
  const dirs = (process.env.PATH ?? SYSTEM_PATH).split(':');
  return [...dirs, ...SYSTEM_PATH.split(':')].some((dir) => dir && existsSync(join(dir, tool)));
}

/** Throws WEFT_E_MISSING_TOOL naming the package when a tool the lab runs is not installed. */
export function requireTools(tools: readonly string[]): void {
  for (const tool of tools) {
    if (!onPath(tool)) {
      throw new WeftError('WEFT_E_MISSING_TOOL', `a lab needs \`${tool}\`; ${installHint(tool)}`);
    }
  }
}
