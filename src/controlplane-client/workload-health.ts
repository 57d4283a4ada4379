// Health checks of this host's workloads, run on their own timers: each workload gets the check
// health-check.ts resolves (the quiet listening check by default), checks run one after
// another (a slow one delays the next, never overlaps it), and results move its health through
// the thresholds. Results feed the Heartbeat, so peers stop sending to an endpoint whose
// process died; a change is reported at once rather than at the next heartbeat.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { describeError } from '../errors.js';
import {
  type CheckState,
  describeCheck,
  type Health,
  type HealthCheck,
  INITIAL_STATE,
  nextState,
  type PolicyHealthChecks,
  resolveHealthCheck,
} from './health-check.js';
import { type ListeningQuery, runProbe } from './health-probes.js';
import type { LocalWorkload } from './local-workloads.js';

export interface WorkloadHealthOptions {
  /** Is something listening on address:port? Default: the native addon's sock_diag query. */
  listening?: ListeningQuery;
  logger?: Pick<Logger, 'warn'>;
}

export interface WorkloadCheckStatus {
  name: string;
  health: Health;
  /** "listening", "tcp", "http GET /path". */
  check: string;
  /** default, agent config, or TrafficPolicy/NAME (or "TrafficPolicy/A over TrafficPolicy/B"). */
  checkSource: string;
  /** Checks run since the agent started, by result. */
  results: { passed: number; failed: number; error: number };
}

interface Entry {
  workload: LocalWorkload;
  check: HealthCheck;
  state: CheckState;
  results: WorkloadCheckStatus['results'];
  timer: NodeJS.Timeout | undefined;
  /** Bumped when the check changes or stops: a run of an older generation is dropped. */
  generation: number;
  lastError: string | undefined;
}

export class WorkloadHealth extends EventEmitter<{ change: [name: string, health: Health] }> {
  private readonly entries = new Map<string, Entry>();
  private started = false;
  private stopped = false;
  private listeningQuery: Promise<ListeningQuery> | undefined;

  constructor(
    private readonly workloads: readonly LocalWorkload[],
    private readonly options: WorkloadHealthOptions = {},
  ) {
    super();
    for (const w of workloads) {
      this.entries.set(w.name, {
        workload: w,
        check: resolveHealthCheck(w.config.health, undefined),
        state: INITIAL_STATE,
        results: { passed: 0, failed: 0, error: 0 },
        timer: undefined,
        generation: 0,
        lastError: undefined,
      });
    }
  }

  start(): void {
    this.started = true;
    for (const entry of this.entries.values()) this.restart(entry);
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.entries.values()) {
      entry.generation++;
      clearTimeout(entry.timer);
    }
  }

  /** The services' effective TrafficPolicy health checks (from each accepted snapshot). */
  usePolicies(policies: PolicyHealthChecks): void {
    for (const entry of this.entries.values()) {
      const check = resolveHealthCheck(
        entry.workload.config.health,
        policies.get(entry.workload.service),
      );
      if (JSON.stringify(check) === JSON.stringify(entry.check)) continue;
      entry.check = check;
      // A new check starts a new streak; the health stands until it says otherwise.
      entry.state = { ...entry.state, passes: 0, failures: 0 };
      if (this.started) this.restart(entry);
    }
  }

  get(name: string): Health {
    return this.entries.get(name)?.state.health ?? 'unknown';
  }

  all(): { name: string; health: Health }[] {
    return this.workloads.map((w) => ({ name: w.name, health: this.get(w.name) }));
  }

  status(): WorkloadCheckStatus[] {
    return [...this.entries.values()].map((e) => ({
      name: e.workload.name,
      health: e.state.health,
      check: describeCheck(e.check),
      checkSource: e.check.source,
      results: { ...e.results },
    }));
  }

  private restart(entry: Entry): void {
    if (this.stopped) return;
    entry.generation++;
    clearTimeout(entry.timer);
    void this.run(entry, entry.generation);
  }

  private async run(entry: Entry, generation: number): Promise<void> {
    const started = Date.now();
    const check = entry.check;
    let passed: boolean | undefined;
    try {
      passed = await runProbe(check, entry.workload, () => this.listening());
      entry.lastError = undefined;
    } catch (err) {
      passed = undefined;
      const message = describeError(err);
      // One line per distinct problem, not one per interval.
      if (message !== entry.lastError)
        this.options.logger?.warn(
          { workload: entry.workload.name, check: describeCheck(check), err: message },
          'cannot run the health check: the workload is reported with unknown health',
        );
      entry.lastError = message;
    }
    if (generation !== entry.generation || this.stopped) return;
    if (passed === true) entry.results.passed++;
    else if (passed === false) entry.results.failed++;
    else entry.results.error++;
    const before = entry.state.health;
    entry.state = nextState(entry.state, passed, check);
    if (entry.state.health !== before) this.emit('change', entry.workload.name, entry.state.health);
    const delay = Math.max(0, check.intervalMs - (Date.now() - started));
    entry.timer = setTimeout(() => void this.run(entry, generation), delay);
    entry.timer.unref();
  }

  private listening(): Promise<ListeningQuery> {
    if (this.options.listening) return Promise.resolve(this.options.listening);
    // Loaded on first use: only the listening check needs the native addon.
    this.listeningQuery ??= import('../native/socket-ops.js').then(
      ({ nativeSocketOps }) =>
        (address: string, port: number) =>
          nativeSocketOps.listening(address, port),
    );
    return this.listeningQuery;
  }
}
