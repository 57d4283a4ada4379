// Nodes that joined before placement existed have no list of allowed services. Refusing them
// everything would take a running mesh down at the upgrade, so each is allowed, once, the
// services it has workloads of at that moment, and the control plane says so at warn level:
// an operator checks them with `weft get nodes` and removes any with `weft node disallow`.
import type { Logger } from 'pino';
import { NODES_PREFIX } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { workloadsOfNode } from './identity-service.js';
import type { NodeRecord } from './node-record.js';

export async function migrateNodeServices(store: Store, log: Logger): Promise<void> {
  const { entries } = await store.list<NodeRecord>(NODES_PREFIX);
  for (const entry of entries) {
    if (entry.value.services !== undefined) continue;
    const services = [
      ...new Set((await workloadsOfNode(store, entry.value.name)).map((w) => w.value.spec.service)),
    ].sort();
    const txn = await store.put(entry.key, { ...entry.value, services } satisfies NodeRecord, {
      prevModRevision: entry.modRevision,
    });
    if (txn.succeeded)
      log.warn(
        { node: entry.value.name, services },
        'node joined before placement: allowed the services it has workloads of (check with weft get nodes)',
      );
  }
}
