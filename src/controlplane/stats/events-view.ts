// The mesh's recent authorization denials and failed requests, from the agents' stats reports
// still in the window: newest first, each with the node that reported it, and how many there
// were in all (each report carries only its agent's newest few).
import type { DenialRecord, RequestErrorRecord, StatsReport } from '../../api/stats-messages.js';
import type { ReceivedReport } from './stats-book.js';

export type NodeEvent<T> = T & { node: string };
export type NodeDenial = NodeEvent<DenialRecord>;
export type NodeRequestError = NodeEvent<RequestErrorRecord>;

function recentEvents<T extends { atUnixMs: number }>(
  reports: ReadonlyMap<string, readonly ReceivedReport[]>,
  limit: number,
  pick: (r: StatsReport) => { events: T[] | undefined; omitted: number | undefined },
): { events: NodeEvent<T>[]; total: number } {
  const all: NodeEvent<T>[] = [];
  let total = 0;
  for (const [node, list] of reports) {
    for (const { report } of list) {
      const { events = [], omitted = 0 } = pick(report);
      total += events.length + omitted;
      for (const e of events) all.push({ ...e, node });
    }
  }
  all.sort((a, b) => b.atUnixMs - a.atUnixMs || a.node.localeCompare(b.node));
  return { events: all.slice(0, limit), total };
}

export function recentDenials(
  reports: ReadonlyMap<string, readonly ReceivedReport[]>,
  limit: number,
): { denials: NodeDenial[]; total: number } {
  const { events, total } = recentEvents(reports, limit, (r) => ({
    events: r.denials,
    omitted: r.denialsOmitted,
  }));
  return { denials: events, total };
}

export function recentErrors(
  reports: ReadonlyMap<string, readonly ReceivedReport[]>,
  limit: number,
): { errors: NodeRequestError[]; total: number } {
  const { events, total } = recentEvents(reports, limit, (r) => ({
    events: r.errors,
    omitted: r.errorsOmitted,
  }));
  return { errors: events, total };
}
