// The master's workers: forks them (worker-main.js, from the code on disk now, so a reload
// after an upgrade runs the new code), hands each the held listening sockets as stdio slots
// and the session's state, replaces the ones that die (crash-backoff.ts), and runs reloads
// generation by generation (generations.ts). Workers' stdout comes through here, whole lines
// at a time (worker-lines.ts). Before the master execs, it hands its workers over (handOver).
import { type ChildProcess, fork } from 'node:child_process';
import type { Registry } from 'prom-client';
import type { Logger } from '../../sys/logger.js';
import { Counter, Gauge } from '../../telemetry/prom.js';
import type { Readout } from '../../telemetry/stats-readout.js';
import { BULK_GC_FLAG } from '../bulk-gc.js';
import type { AgentConfig } from '../config.js';
import { EXIT_CONFIG } from '../exit-status.js';
import { workerExecArgv } from '../node-flags.js';
import { defaultCrashBackoff, restartDelay } from './crash-backoff.js';
import { afterExit, afterReady, type GenerationView } from './generations.js';
import type { HandedWorker } from './handover.js';
import type { SlotSockets } from './listening-sockets.js';
import { mergeMetrics, retiredMetrics } from './metrics-merge.js';
import { mergeReadouts, retiredPart } from './readout-merge.js';
import { UpdateFlow } from './update-flow.js';
import { forwardLines } from './worker-lines.js';
import {
  type MasterMessage,
  type MirrorState,
  WORKER_PROTOCOL,
  type WorkerMessage,
} from './worker-messages.js';

/** The held sockets appear in each worker from this stdio slot on (0-2 stdio, 3 the IPC). */
const FIRST_FD_SLOT = 4;
/** A worker that answers no metrics request within this is left out of that scrape. */
const METRICS_TIMEOUT_MS = 2_000;

export interface WorkerStatus {
  pid: number;
  generation: number;
  state: 'starting' | 'serving' | 'retiring';
  /** Connections it held at the last scrape or status request. */
  connections: number;
  /** The code it runs (build-id.ts); empty until it is ready. */
  build: string;
}

export interface WorkerPoolOptions {
  /** The worker's entry file (worker-main.js). */
  entry: string;
  /** The held listening sockets worker slot i serves (listening-sockets.ts). */
  sockets: (slot: number) => SlotSockets;
  /** A generation was retired (or abandoned); the serving one has `count` workers. */
  onRetired?: (count: number) => void;
  state: () => MirrorState;
  /** Messages a new worker gets right after its init (the taps open now). */
  afterInit?: () => MasterMessage[];
  onMessage: (worker: PoolWorker, message: WorkerMessage) => void;
  /** Whole lines the workers wrote to stdout. */
  writeLines: (lines: string) => void;
  registry: Registry;
  log: Logger;
  now?: () => number;
  /** The first generation's number (after a master's exec: on from the previous image's). */
  firstGeneration?: number;
  /** Workers this pool did not fork but that serve (a previous master image's, adopted). */
  others?: () => WorkerStatus[];
  /** The counts the previous master image had (retiredCounts), so none goes backwards. */
  retired?: RetiredCounts;
}

/** The counts of workers no longer scraped: exited ones, and after an exec the adopted ones. */
export interface RetiredCounts {
  readout: Readout;
  metrics: unknown[][];
}

export interface PoolWorker {
  readonly child: ChildProcess;
  readonly generation: number;
  /** Its slot in the generation: the listening sockets it serves. */
  readonly slot: number;
  ready: boolean;
  connections: number;
  build: string;
  stopping: boolean;
  /** Its stats readout at the last scrape (kept as retired counts when it exits). */
  readout: Readout | undefined;
  /** Its getMetricsAsJSON() at the last scrape (its counters kept when it exits). */
  metrics: unknown[] | undefined;
  /** Snapshots and certificates to it, one write at a time (update-flow.ts). */
  readonly updates: UpdateFlow;
}

interface Generation extends GenerationView {
  config: AgentConfig;
  /** Settles when every worker reported ready (true) or the generation was abandoned. */
  settle?: (ok: boolean) => void;
}

export class WorkerPool {
  private readonly gens: Generation[] = [];
  private readonly workers = new Set<PoolWorker>();
  private crashes: number[] = [];
  private nextGeneration: number;
  private stopping = false;
  /** While the master execs (an upgrade): no worker is started, the hand-over lists them all. */
  private frozen = false;
  private metricsId = 0;
  private readonly pendingMetrics = new Map<number, (m: { metrics: unknown[] }) => void>();
  /** The counts of workers that exited (readout-merge.ts). */
  private retired: Readout = new Map();
  /** The counters of workers that exited, as metrics parts (merged into one at a scrape). */
  private retiredMetrics: unknown[][] = [];
  private readonly restarts: Counter<'reason'>;
  private readonly now: () => number;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.now = opts.now ?? Date.now;
    this.nextGeneration = opts.firstGeneration ?? 1;
    if (opts.retired) {
      this.retired = opts.retired.readout;
      this.retiredMetrics = [...opts.retired.metrics];
    }
    this.restarts = new Counter({
      name: 'weft_agent_worker_restarts_total',
      help: 'Workers the master started in place of one that died, by how it ended',
      labelNames: ['reason'],
      registers: [opts.registry],
    });
    const pool = this;
    new Gauge({
      name: 'weft_agent_workers',
      help: 'Worker processes of this agent, by state (starting, serving, retiring)',
      labelNames: ['state'],
      registers: [opts.registry],
      collect() {
        this.reset();
        for (const s of ['starting', 'serving', 'retiring'] as const) this.set({ state: s }, 0);
        for (const w of [...pool.status(), ...(opts.others?.() ?? [])])
          this.inc({ state: w.state });
      },
    });
  }

  /** Starts a generation of `count` workers; resolves true once all are ready, false if it
   * was abandoned (a worker died before it was ready while another generation serves). */
  startGeneration(config: AgentConfig, count: number): Promise<boolean> {
    const gen: Generation = {
      id: this.nextGeneration++,
      state: 'starting',
      size: count,
      ready: 0,
      config,
    };
    this.gens.push(gen);
    const settled = new Promise<boolean>((resolve) => {
      gen.settle = resolve;
    });
    for (let i = 0; i < count; i += 1) this.spawn(gen, i);
    return settled;
  }

  /** Every worker now, for `weft status`. */
  status(): WorkerStatus[] {
    return [...this.workers].map((w) => ({
      pid: w.child.pid ?? 0,
      generation: w.generation,
      state: this.gens.find((g) => g.id === w.generation)?.state ?? 'retiring',
      connections: w.connections,
      build: w.build,
    }));
  }

  /**
   * Before the master execs: every worker is told to keep serving when the channel closes (and
   * the drain to use when the new master retires it); no worker is started meanwhile. Resolves
   * with the workers to hand over once every message was written.
   */
  async handOver(drainMs: number): Promise<HandedWorker[]> {
    this.frozen = true;
    await Promise.all([...this.workers].map((w) => sendFlushed(w, { type: 'handover', drainMs })));
    return this.status().map((s) => {
      const w = [...this.workers].find((x) => x.child.pid === s.pid);
      const fd = (w?.child.stdout as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
      return { ...s, stdout: typeof fd === 'number' && fd >= 0 ? fd : undefined };
    });
  }

  /** For the next master image: every count so far, the live workers' as last scraped (the
   * next image cannot scrape them: their IPC channel closes at the exec). */
  retiredCounts(): RetiredCounts {
    const live = [...this.workers];
    return {
      readout: mergeReadouts([
        this.retired,
        ...live.flatMap((w) => (w.readout ? [retiredPart(w.readout)] : [])),
      ]),
      metrics: [
        ...this.retiredMetrics,
        ...live.flatMap((w) => (w.metrics ? [retiredMetrics(w.metrics)] : [])),
      ],
    };
  }

  /** The exec failed: the workers go back to retiring when their channel closes. */
  handOverCancelled(): void {
    this.frozen = false;
    this.broadcast({ type: 'handover', drainMs: null });
  }

  /** The number the next generation gets (handed over to the next master image). */
  get generationAfter(): number {
    return this.nextGeneration;
  }

  /** True once a generation serves (its workers accept connections). */
  get serving(): boolean {
    return this.gens.some((g) => g.state === 'serving');
  }

  broadcast(message: MasterMessage): void {
    for (const w of this.workers) {
      if (message.type === 'snapshot' || message.type === 'certificate') w.updates.offer(message);
      else send(w, message);
    }
  }

  /** The agent's stats readout: every worker's now, and the counts of those that exited. */
  async readout(): Promise<Readout> {
    await this.metrics();
    return mergeReadouts([
      this.retired,
      ...[...this.workers].flatMap((w) => (w.readout ? [w.readout] : [])),
    ]);
  }

  /**
   * Every worker's getMetricsAsJSON() (those that answer in time), and the counters of those
   * that exited; refreshes connections.
   */
  async metrics(): Promise<unknown[][]> {
    if (this.retiredMetrics.length > 1) {
      // Folded into one part, so that reloads and crashes over months do not pile up parts.
      const parts = this.retiredMetrics.splice(0);
      this.retiredMetrics.unshift(retiredMetrics(await mergeMetrics(parts).getMetricsAsJSON()));
    }
    const asks = [...this.workers].map(
      (w) =>
        new Promise<unknown[] | undefined>((resolve) => {
          const id = ++this.metricsId;
          const timer = setTimeout(() => {
            this.pendingMetrics.delete(id);
            resolve(undefined);
          }, METRICS_TIMEOUT_MS);
          this.pendingMetrics.set(id, ({ metrics }) => {
            clearTimeout(timer);
            resolve(metrics);
          });
          if (!send(w, { type: 'metrics', id })) {
            clearTimeout(timer);
            this.pendingMetrics.delete(id);
            resolve(undefined);
          }
        }),
    );
    const live = (await Promise.all(asks)).filter((m): m is unknown[] => m !== undefined);
    return [...live, ...this.retiredMetrics];
  }

  /** Retires every worker with this drain and resolves when all have exited (SIGKILL for the
   * ones still there `graceMs` after the drain ended). */
  async stop(drainMs: number, graceMs = 5_000): Promise<void> {
    this.stopping = true;
    for (const g of this.gens) g.state = 'retiring';
    const exits = [...this.workers].map((w) => exited(w.child));
    this.broadcast({ type: 'retire', drainMs });
    const timer = setTimeout(() => {
      for (const w of this.workers) w.child.kill('SIGKILL');
    }, drainMs + graceMs);
    timer.unref();
    await Promise.all(exits);
    clearTimeout(timer);
  }

  private spawn(gen: Generation, slot: number): void {
    const fds = this.opts.sockets(slot);
    const child = fork(this.opts.entry, [], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc', fds.outbound, fds.inbound, fds.tunnel],
      serialization: 'advanced',
      // The master's node flags but its own V8 sizes (node-flags.ts), and full collections
      // spaced by heap and buffer growth together (bulk-gc.ts).
      execArgv: [...workerExecArgv(process.execArgv), BULK_GC_FLAG],
      // A worker must not take systemd's variables (sockets, watchdog) for its own.
      env: { ...process.env, LISTEN_PID: '', WATCHDOG_PID: '' },
    });
    const worker: PoolWorker = {
      child,
      generation: gen.id,
      slot,
      ready: false,
      connections: 0,
      build: '',
      stopping: false,
      readout: undefined,
      metrics: undefined,
      updates: new UpdateFlow((update, written) => {
        if (!child.connected) return written();
        try {
          child.send(update, () => written());
        } catch {
          written();
        }
      }),
    };
    this.workers.add(worker);
    if (child.stdout) forwardLines(child.stdout, this.opts.writeLines);
    child.on('message', (message: WorkerMessage) => this.onMessage(worker, message));
    child.once('exit', (code, signal) => this.onExit(worker, code, signal));
    child.on('error', (err) => this.opts.log.error({ err, worker_pid: child.pid }, 'worker error'));
    send(worker, {
      type: 'init',
      protocol: WORKER_PROTOCOL,
      generation: gen.id,
      config: gen.config,
      fds: { outbound: FIRST_FD_SLOT, inbound: FIRST_FD_SLOT + 1, tunnel: FIRST_FD_SLOT + 2 },
      state: this.opts.state(),
    });
    for (const message of this.opts.afterInit?.() ?? []) send(worker, message);
  }

  private onMessage(worker: PoolWorker, message: WorkerMessage): void {
    if (message.type === 'metrics') {
      worker.connections = message.connections;
      worker.readout = message.readout;
      worker.metrics = message.metrics;
      this.pendingMetrics.get(message.id)?.(message);
      this.pendingMetrics.delete(message.id);
      return;
    }
    if (message.type === 'connections') {
      worker.connections = message.connections;
      return;
    }
    if (message.type === 'ready') {
      worker.ready = true;
      worker.build = message.build;
      const gen = this.gens.find((g) => g.id === worker.generation);
      if (!gen) return;
      gen.ready += 1;
      const retire = afterReady(this.gens, gen.id);
      if (gen.ready >= gen.size && gen.state === 'starting') {
        gen.state = 'serving';
        gen.settle?.(true);
        this.opts.log.info(
          { generation: gen.id, workers: gen.size, pids: this.pidsOf(gen.id) },
          'workers ready',
        );
      }
      for (const id of retire) this.retire(id);
      return;
    }
    this.opts.onMessage(worker, message);
  }

  private retire(id: number): void {
    const gen = this.gens.find((g) => g.id === id);
    if (!gen) return;
    gen.state = 'retiring';
    const drainMs = this.newest()?.config.drain.maxMs ?? gen.config.drain.maxMs;
    this.opts.log.info({ generation: id, drain_ms: drainMs }, 'retiring workers');
    for (const w of this.workers)
      if (w.generation === id) send(w, { type: 'retire', drainMs: drainMs });
    // Fewer workers now: the retiring ones close their copies of the extra slots' sockets at
    // once, and so does the master, so the kernel stops hashing connections to sockets nobody
    // will accept on (those queued there at that moment are reset: SO_REUSEPORT's limit).
    const serving = this.gens.filter((g) => g.state === 'serving').at(-1);
    if (serving) this.opts.onRetired?.(serving.size);
  }

  private onExit(worker: PoolWorker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    if (worker.readout) this.retired = mergeReadouts([this.retired, retiredPart(worker.readout)]);
    if (worker.metrics) this.retiredMetrics.push(retiredMetrics(worker.metrics));
    const gen = this.gens.find((g) => g.id === worker.generation);
    const outcome = afterExit(
      this.gens,
      worker.generation,
      worker.ready,
      this.stopping,
      code === EXIT_CONFIG,
    );
    const pid = worker.child.pid;
    if (gen && gen.state !== 'retiring' && worker.ready) gen.ready -= 1;
    // A generation whose last worker is gone is forgotten.
    if (gen && ![...this.workers].some((w) => w.generation === gen.id) && outcome.kind === 'none')
      this.gens.splice(this.gens.indexOf(gen), 1);
    if (outcome.kind === 'none') {
      this.opts.log.info(
        { worker_pid: pid, generation: worker.generation, code, signal },
        'worker exited',
      );
      return;
    }
    if (outcome.kind === 'give-up' && gen) {
      this.stopping = true;
      for (const w of this.workers) w.child.kill('SIGKILL');
      gen.settle?.(false);
      return;
    }
    const reason = signal ?? `exit ${code}`;
    this.restarts.inc({ reason: signal ? 'signal' : 'exit' });
    if (outcome.kind === 'abandon' && gen) {
      this.opts.log.error(
        { worker_pid: pid, generation: gen.id, code, signal },
        'reload failed: a new worker died before it was ready; the previous workers keep serving',
      );
      gen.state = 'retiring';
      for (const w of this.workers) if (w.generation === gen.id) w.child.kill('SIGKILL');
      this.gens.splice(this.gens.indexOf(gen), 1);
      gen.settle?.(false);
      // Slots only the abandoned generation had: nobody would accept on them.
      const serving = this.gens.filter((g) => g.state === 'serving').at(-1);
      if (serving) this.opts.onRetired?.(serving.size);
      return;
    }
    const now = this.now();
    const { delayMs, recent } = restartDelay([...this.crashes, now], now, defaultCrashBackoff);
    this.crashes = recent;
    this.opts.log.error(
      {
        worker_pid: pid,
        generation: worker.generation,
        reason,
        restart_in_ms: delayMs,
        recent_crashes: recent.length,
      },
      'worker died: starting another',
    );
    const again = () => {
      if (this.stopping || !gen || !this.gens.includes(gen)) return;
      // During an exec, the next master image replaces it (or this one, if the exec failed).
      if (this.frozen) setTimeout(again, 1_000).unref();
      else this.spawn(gen, worker.slot);
    };
    if (delayMs === 0) again();
    else setTimeout(again, delayMs).unref();
  }

  private newest(): Generation | undefined {
    return this.gens.at(-1);
  }

  private pidsOf(id: number): number[] {
    return [...this.workers].filter((w) => w.generation === id).map((w) => w.child.pid ?? 0);
  }
}

function send(worker: PoolWorker, message: MasterMessage): boolean {
  if (!worker.child.connected) return false;
  try {
    return worker.child.send(message);
  } catch {
    return false;
  }
}

/** Sends and resolves once the message was written to the channel (or could not be). */
function sendFlushed(worker: PoolWorker, message: MasterMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!worker.child.connected) return resolve();
    try {
      worker.child.send(message, () => resolve());
    } catch {
      resolve();
    }
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
