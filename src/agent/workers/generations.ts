// The generations of workers and what the master does when one changes: a reload starts a new
// generation; once all its workers are ready, every older generation still serving is retired
// (stops accepting and drains). A worker that dies is replaced while its generation serves; a
// new generation whose worker dies before it was ready is abandoned (the reload failed: the
// serving generation keeps the traffic), unless there is no other generation to serve.

export type GenerationState = 'starting' | 'serving' | 'retiring';

export interface GenerationView {
  id: number;
  state: GenerationState;
  /** Workers it should have. */
  size: number;
  /** Of those, how many reported ready. */
  ready: number;
}

/** A worker of generation `id` reported ready: the generations to retire now (oldest first). */
export function afterReady(gens: readonly GenerationView[], id: number): number[] {
  const gen = gens.find((g) => g.id === id);
  if (!gen || gen.state === 'retiring' || gen.ready < gen.size) return [];
  return gens.filter((g) => g.id < id && g.state !== 'retiring').map((g) => g.id);
}

export type ExitOutcome =
  /** Start another worker in its place (after the crash backoff). */
  | { kind: 'replace' }
  /** The reload's new generation failed: stop its other workers, keep the serving one. */
  | { kind: 'abandon' }
  /** The first generation cannot start: its worker refused the config (EX_CONFIG). Starting
   * another would fail the same way: the agent gives up (and systemd does not restart it). */
  | { kind: 'give-up' }
  /** Nothing to do: a retiring worker finished, or a worker asked to stop. */
  | { kind: 'none' };

export function afterExit(
  gens: readonly GenerationView[],
  id: number,
  wasReady: boolean,
  stopping: boolean,
  refusedConfig = false,
): ExitOutcome {
  const gen = gens.find((g) => g.id === id);
  if (stopping || !gen || gen.state === 'retiring') return { kind: 'none' };
  const others = gens.some((g) => g.id !== id && g.state === 'serving');
  if (gen.state === 'starting' && !wasReady && others) return { kind: 'abandon' };
  if (gen.state === 'starting' && !wasReady && refusedConfig) return { kind: 'give-up' };
  return { kind: 'replace' };
}
