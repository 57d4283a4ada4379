// The Admin GetStats call and where the Sync stream's reports go: the window asked for is
// checked (a window that is not offered is refused, naming the ones that are), the reports of
// every node in it are merged (stats-aggregate.ts).
import type { Logger } from 'pino';
import type { GetStatsRequest, GetStatsResponse, StatsWindow } from '../../api/stats-messages.js';
import type { NodeAdmin } from '../identity/node-admin.js';
import { invalidRequest } from '../refusal.js';
import type { AgentReports } from '../sync/sync-session.js';
import { aggregateStats } from './stats-aggregate.js';
import type { StatsShare } from './stats-share.js';

const WINDOWS: readonly StatsWindow[] = ['1m', 'last'];

export async function getStats(
  share: StatsShare,
  req: GetStatsRequest,
  now = Date.now(),
): Promise<GetStatsResponse> {
  const window = (req.window || '1m') as StatsWindow;
  if (!WINDOWS.includes(window))
    throw invalidRequest(
      'stats_window',
      `window "${req.window}" is not one of ${WINDOWS.join(', ')}`,
    );
  return aggregateStats(await share.reports(), {
    window,
    service: req.service ?? '',
    windowMs: share.book.windowMs,
    now,
  });
}

/** The Sync stream's stats reports into the book, host facts onto the node's record. */
export function agentReports(share: StatsShare, nodes: NodeAdmin, log: Logger): AgentReports {
  return {
    stats: (node, report) => share.report(node, report),
    hostFacts: (node, facts) => {
      nodes
        .noteHostFacts(node, facts)
        .catch((err: unknown) => log.debug({ err, node }, 'host facts not kept'));
    },
  };
}
