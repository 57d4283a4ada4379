// Reads what the dashboard shows from this replica's registry and node list. Every open page
// polls every 2 s: answers are shared for a second, so ten pages cost the store what one does.
import type { NodeAdmin } from '../identity/node-admin.js';
import type { ResourceRegistry } from '../registry/resource-registry.js';
import {
  buildOverview,
  type Overview,
  type OverviewTraffic,
  POLICY_KINDS,
  type StoredDoc,
} from './overview.js';

const SHARE_MS = 1000;

export interface OverviewSourceDeps {
  registry: Pick<ResourceRegistry, 'get'>;
  nodes: Pick<NodeAdmin, 'list'>;
  traffic(): Promise<OverviewTraffic>;
  now?: () => number;
}

async function documents(
  registry: OverviewSourceDeps['registry'],
  kind: string,
): Promise<StoredDoc[]> {
  const resources = await registry.get(kind);
  return resources.map((r) => JSON.parse(r.json) as StoredDoc);
}

/** An overview function whose answers are shared by callers within a second of each other. */
export function overviewSource(deps: OverviewSourceDeps): () => Promise<Overview> {
  const now = deps.now ?? Date.now;
  let last: { at: number; overview: Promise<Overview> } | undefined;
  const build = async (): Promise<Overview> => {
    const [services, workloads, policies, nodes, traffic] = await Promise.all([
      documents(deps.registry, 'Service'),
      documents(deps.registry, 'Workload'),
      Promise.all(POLICY_KINDS.map((kind) => documents(deps.registry, kind))).then((l) => l.flat()),
      deps.nodes.list(),
      deps.traffic(),
    ]);
    return buildOverview({
      services,
      workloads,
      policies,
      nodes,
      traffic,
      now: now(),
    });
  };
  return () => {
    const at = now();
    if (last === undefined || at - last.at >= SHARE_MS) {
      const overview = build();
      last = { at, overview };
      // A failed read is not shared: the next poll tries again.
      overview.catch(() => {
        if (last?.overview === overview) last = undefined;
      });
    }
    return last.overview;
  };
}
