// A weighted choice among a rule's backends (a canary split): each gets weight / total of the
// requests; a backend of weight 0 was left out when the table was built. The random source is
// injected so a split can be checked exactly over many draws.
import type { CompiledBackend } from './route-table.js';

/** The backend for one draw of `random()` in [0, 1); undefined when no backend has weight. */
export function pickBackend(
  backends: readonly CompiledBackend[],
  totalWeight: number,
  random: () => number,
): CompiledBackend | undefined {
  if (totalWeight <= 0) return undefined;
  if (backends.length === 1) return backends[0];
  let point = random() * totalWeight;
  for (const b of backends) {
    point -= b.weight;
    if (point < 0) return b;
  }
  // random() is below 1, but floating point may leave a sliver: the last backend takes it.
  return backends[backends.length - 1];
}
