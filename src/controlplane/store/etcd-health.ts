// Whether this replica can reach etcd now: a probe (one short read) every second, judged by a
// pure step function. Down after three failed probes in a row (a lost read is not an outage),
// up again at the first answer. While down, the store refuses requests at once, /readyz says
// why, and the control plane sends its agents to another replica (control-plane.ts).
import type { StoreHealth } from './store.js';

export interface EtcdHealthState {
  /** Undefined while etcd answers; else why not (the first failure of the run). */
  problem?: string;
  /** When the run of failed probes began (also before they count as an outage). */
  sinceUnixMs?: number;
  /** The first failure of the run, kept until it counts as an outage. */
  firstError?: string;
  /** Failed probes in a row. */
  failures: number;
}

export type EtcdProbeResult = { ok: true } | { ok: false; error: string };

/** What one probe changes: the next state, and whether it is a transition (`down`/`up`). */
export interface EtcdHealthStep {
  state: EtcdHealthState;
  change?: 'down' | 'up';
}

export const INITIAL_ETCD_HEALTH: EtcdHealthState = { failures: 0 };

/** The state after one probe; `downAfter` failed probes in a row make etcd unreachable. */
export function etcdHealthStep(
  state: EtcdHealthState,
  probe: EtcdProbeResult,
  nowUnixMs: number,
  downAfter: number,
): EtcdHealthStep {
  if (probe.ok) {
    if (state.problem === undefined) return { state: { failures: 0 } };
    return { state: { failures: 0 }, change: 'up' };
  }
  const failures = state.failures + 1;
  if (state.problem !== undefined) return { state: { ...state, failures } };
  // The first failure says most (a reset, a refusal); later ones often only name the client's
  // own circuit breaker. The outage dates from it.
  const firstError = state.firstError ?? probe.error;
  const sinceUnixMs = state.sinceUnixMs ?? nowUnixMs;
  if (failures < downAfter) return { state: { failures, firstError, sinceUnixMs } };
  return { state: { failures, problem: firstError, sinceUnixMs }, change: 'down' };
}

export interface EtcdHealthOptions {
  /** One probe: resolves when etcd answered, rejects with why not. */
  probe(deadlineMs: number): Promise<void>;
  /** How messages name etcd: "etcd (http://10.0.0.1:2379,...)". */
  name?: string;
  /** Between probes (default 1 s). */
  intervalMs?: number;
  /**
   * A probe's own deadline (default 2 s). An etcd that refuses or resets fails a probe at once;
   * only a silent one (packets dropped, no leader) costs the whole deadline.
   */
  timeoutMs?: number;
  /**
   * Failed probes in a row that make etcd unreachable (default 3): a replica that counts etcd
   * gone sends every agent away, so a slow read or two under load must not be enough.
   */
  downAfter?: number;
  now?: () => number;
}

/** Probes etcd until stopped, and tells listeners when it becomes unreachable or returns. */
export class EtcdHealth implements StoreHealth {
  private state: EtcdHealthState = INITIAL_ETCD_HEALTH;
  private readonly listeners = new Set<(problem: string | undefined) => void>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly downAfter: number;
  private readonly now: () => number;

  constructor(private readonly options: EtcdHealthOptions) {
    this.intervalMs = options.intervalMs ?? 1_000;
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.downAfter = options.downAfter ?? 3;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.schedule();
  }

  problem(): string | undefined {
    const { problem, sinceUnixMs } = this.state;
    if (problem === undefined) return undefined;
    return `${this.options.name ?? 'etcd'} unreachable since ${new Date(sinceUnixMs ?? 0).toISOString()}: ${problem}`;
  }

  onChange(listener: (problem: string | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Counts the result of a probe (the loop's, or a test's). */
  note(result: EtcdProbeResult): void {
    const step = etcdHealthStep(this.state, result, this.now(), this.downAfter);
    this.state = step.state;
    if (step.change === undefined) return;
    const problem = this.problem();
    for (const listener of [...this.listeners]) listener(problem);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.listeners.clear();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.probeOnce(), this.intervalMs);
    this.timer.unref();
  }

  private probeOnce(): void {
    this.options.probe(this.timeoutMs).then(
      () => {
        if (!this.stopped) this.note({ ok: true });
        this.schedule();
      },
      (err: unknown) => {
        if (!this.stopped)
          this.note({ ok: false, error: err instanceof Error ? err.message : String(err) });
        this.schedule();
      },
    );
  }
}
