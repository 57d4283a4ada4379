// What the control plane keeps of the agents' stats reports: per node, the reports received in
// the last window (1 min), each with when it arrived by this control plane's clock (agents'
// clocks are not trusted to agree). Bounded: a node keeps at most the reports that fit in the
// window at the fastest cadence, and a report is checked against the same bounds the agents
// build to. A node that goes away stops adding reports and its numbers age out of the window;
// a node removed from the mesh is forgotten at once.
import type { StatsKind, StatsReport, StatsSeries } from '../../api/stats-messages.js';

export const STATS_WINDOW_MS = 60_000;
/** The fastest cadence an agent may report at (telemetry.stats.intervalMs' minimum). */
const MIN_INTERVAL_MS = 1_000;
/** A report's bounds, over what an agent builds (300 series, 64 KiB): room, not a target. */
export const MAX_REPORT_SERIES = 1_000;
const MAX_NAME = 253;
const KINDS = new Set<StatsKind>(['inbound', 'edge', 'route']);

export interface ReceivedReport {
  node: string;
  /** When this control plane received it. */
  atMs: number;
  /** The interval its counts cover (the agent's end minus start), ms. */
  intervalMs: number;
  report: StatsReport;
}

export class StatsBook {
  private readonly byNode = new Map<string, ReceivedReport[]>();
  private readonly now: () => number;
  readonly windowMs: number;

  constructor(options: { now?: () => number; windowMs?: number } = {}) {
    this.now = options.now ?? Date.now;
    this.windowMs = options.windowMs ?? STATS_WINDOW_MS;
  }

  /** Keeps a node's report; returns why it was not kept, if it was not. */
  add(node: string, report: StatsReport): string | undefined {
    const problem = reportProblem(report);
    if (problem !== undefined) return problem;
    const now = this.now();
    const list = (this.byNode.get(node) ?? []).filter((r) => now - r.atMs < this.windowMs);
    list.push({
      node,
      atMs: now,
      intervalMs: Math.max(1, report.endUnixMs - report.startUnixMs),
      report,
    });
    const most = Math.ceil(this.windowMs / MIN_INTERVAL_MS) + 1;
    this.byNode.set(node, list.slice(-most));
    return undefined;
  }

  forget(node: string): void {
    this.byNode.delete(node);
  }

  /** Every node's reports still in the window, oldest first. */
  reports(): Map<string, ReceivedReport[]> {
    const now = this.now();
    const out = new Map<string, ReceivedReport[]>();
    for (const [node, list] of this.byNode) {
      const live = list.filter((r) => now - r.atMs < this.windowMs);
      if (live.length > 0) out.set(node, live);
      else this.byNode.delete(node);
    }
    return out;
  }
}

/** Denials (and errors) per report and text per field, over what an agent sends (20, 256): room. */
const MAX_REPORT_DENIALS = 64;
const MAX_DENIAL_TEXT = 1024;

/** Why a report cannot be kept (over the bounds, malformed), or undefined. */
export function reportProblem(report: StatsReport): string | undefined {
  if (!Array.isArray(report.series)) return 'no series list';
  const denials = report.denials ?? [];
  if (!Array.isArray(denials) || denials.length > MAX_REPORT_DENIALS)
    return `over the ${MAX_REPORT_DENIALS} denials a report may hold`;
  for (const d of denials) {
    const texts = [d.direction, d.source, d.destination, d.reason, d.method, d.path];
    if (!texts.every((t) => typeof t === 'string' && t.length <= MAX_DENIAL_TEXT))
      return `a denial with a field over ${MAX_DENIAL_TEXT} characters`;
  }
  const errors = report.errors ?? [];
  if (!Array.isArray(errors) || errors.length > MAX_REPORT_DENIALS)
    return `over the ${MAX_REPORT_DENIALS} errors a report may hold`;
  for (const e of errors) {
    const texts = [e.source, e.destination, e.method, e.path, e.reason, e.detail, e.endpoint];
    if (!texts.every((t) => typeof t === 'string' && t.length <= MAX_DENIAL_TEXT))
      return `an error with a field over ${MAX_DENIAL_TEXT} characters`;
  }
  if (report.series.length > MAX_REPORT_SERIES)
    return `${report.series.length} series, over the ${MAX_REPORT_SERIES} a report may hold`;
  if (!(report.endUnixMs >= report.startUnixMs)) return 'its interval ends before it starts';
  for (const s of report.series) {
    const bad = seriesProblem(s);
    if (bad !== undefined) return `series ${s.kind} ${s.srcService}->${s.dstService}: ${bad}`;
  }
  return undefined;
}

function seriesProblem(s: StatsSeries): string | undefined {
  if (!KINDS.has(s.kind)) return `kind "${s.kind}" is not inbound, edge or route`;
  for (const name of [s.srcService, s.dstService, s.route])
    if (typeof name !== 'string' || name.length > MAX_NAME) return 'a name over 253 characters';
  const counts = [s.requests, s.successes, s.tcpOpened, s.bytesIn, s.bytesOut, ...s.latencyBuckets];
  if (!counts.every((n) => Number.isFinite(n) && n >= 0)) return 'a negative or non-finite count';
  if (s.successes > s.requests) return 'more successes than requests';
  if (s.latencyBuckets.length > 64) return 'over 64 latency buckets';
  return undefined;
}
