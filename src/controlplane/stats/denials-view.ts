// The mesh's recent authorization denials, from the agents' stats reports still in the window:
// newest first, each with the node that refused it, and how many there were in all (the
// reports carry only each agent's newest few).
import type { DenialRecord } from '../../api/stats-messages.js';
import type { ReceivedReport } from './stats-book.js';

export interface NodeDenial extends DenialRecord {
  node: string;
}

export function recentDenials(
  reports: ReadonlyMap<string, readonly ReceivedReport[]>,
  limit: number,
): { denials: NodeDenial[]; total: number } {
  const all: NodeDenial[] = [];
  let total = 0;
  for (const [node, list] of reports) {
    for (const { report } of list) {
      const denials = report.denials ?? [];
      total += denials.length + (report.denialsOmitted ?? 0);
      for (const d of denials) all.push({ ...d, node });
    }
  }
  all.sort((a, b) => b.atUnixMs - a.atUnixMs || a.node.localeCompare(b.node));
  return { denials: all.slice(0, limit), total };
}
