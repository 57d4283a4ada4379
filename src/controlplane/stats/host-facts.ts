// Host facts as an agent reports them (Join, Sync), made safe to keep and show: bounded
// strings, whole non-negative numbers. An agent's facts are informative only: a malformed
// field is cut or zeroed, never a reason to refuse the agent.
import type { HostFacts } from '../../api/stats-messages.js';

const MAX_TEXT = 128;

/** The facts to keep, or undefined when the message carried none. */
export function keptHostFacts(f: Partial<HostFacts> | null | undefined): HostFacts | undefined {
  if (f === null || f === undefined) return undefined;
  const text = (v: unknown) =>
    typeof v === 'string' ? v.replace(/[\p{Cc}]/gu, ' ').slice(0, MAX_TEXT) : '';
  const count = (v: unknown) =>
    typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;
  const facts: HostFacts = {
    os: text(f.os),
    kernel: text(f.kernel),
    arch: text(f.arch),
    cpus: count(f.cpus),
    memoryBytes: count(f.memoryBytes),
    agentVersion: text(f.agentVersion),
  };
  const empty = Object.values(facts).every((v) => v === '' || v === 0);
  return empty ? undefined : facts;
}

export function sameHostFacts(a: HostFacts | undefined, b: HostFacts | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
