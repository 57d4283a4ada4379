// Removing a lab, whole or half-built, with or without its state file: everything is found
// by name (namespaces and /etc/netns dirs called `<lab>-*`), the state only adds pids.
import { deleteNetns, ETC_NETNS_DIR, listNetns, listNetnsEtc, removeDirs } from './netns.js';
import { type ProcessRef, stopAll } from './processes.js';
import { labDir, readState, removeState } from './state.js';

export interface DownReport {
  name: string;
  /** False when nothing of the lab was found: down of a lab that is not up. */
  wasUp: boolean;
  namespaces: string[];
  /** Pids that were signalled (started processes and strays inside the namespaces). */
  stopped: number[];
  etcDirs: string[];
  stateDir: string | undefined;
}

/**
 * Tears down lab `name`: stops its processes, deletes its namespaces (and so its veths and
 * bridge), removes its /etc/netns dirs and state dir. Idempotent.
 */
export async function teardownLab(
  name: string,
  stateDir: string,
  extraRefs: readonly ProcessRef[] = [],
): Promise<DownReport> {
  // An unreadable state must not block cleaning up: everything else is found by name.
  const state = await readState(stateDir, name).catch(() => undefined);
  const prefix = `${name}-`;
  const namespaces = [...new Set([...(state?.namespaces ?? []), ...(await listNetns(prefix))])];
  const etcDirs = [
    ...new Set([
      ...(state?.etcDirs ?? []).filter((d) => d.startsWith(`${ETC_NETNS_DIR}/${prefix}`)),
      ...(await listNetnsEtc(prefix)),
    ]),
  ];
  const refs = [...(state?.processes ?? []), ...extraRefs];
  const stopped = await stopAll(refs, namespaces);
  await deleteNetns(namespaces);
  await removeDirs(etcDirs);
  const hadState = await removeState(stateDir, name);
  return {
    name,
    wasUp: hadState || namespaces.length > 0 || etcDirs.length > 0 || stopped.length > 0,
    namespaces,
    stopped,
    etcDirs,
    stateDir: hadState ? labDir(stateDir, name) : undefined,
  };
}
