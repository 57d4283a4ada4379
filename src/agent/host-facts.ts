// What this host is (OS, kernel, CPUs, memory, agent version), for `weft get nodes`. Read with
// systeminformation in a short-lived child process (host-facts-probe.ts) when first needed (at
// join or at the first stream), so the agent's own memory never holds it; afterwards a cheap
// fingerprint from node:os (kernel release, CPU count, total memory), checked at each stats
// report, tells when they changed (a CPU or memory hot-plug) and only then are they read again.
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { HostFacts } from '../api/stats-messages.js';
import { run } from '../sys/run.js';

/** Reads the facts; systeminformation by default. */
export type HostFactsReader = () => Promise<Omit<HostFacts, 'agentVersion'>>;

export class HostFactsSource {
  private facts: Promise<HostFacts> | undefined;
  private print: string;

  constructor(
    private readonly agentVersion: string,
    private readonly read: HostFactsReader = readInChildProcess,
    private readonly fingerprint: () => string = hostFingerprint,
  ) {
    this.print = fingerprint();
  }

  /** The facts, read once and kept. */
  current(): Promise<HostFacts> {
    this.facts ??= this.read().then((f) => ({ ...f, agentVersion: this.agentVersion }));
    // A failed read is tried again next time.
    this.facts.catch(() => {
      this.facts = undefined;
    });
    return this.facts;
  }

  /** The new facts when the host changed since they were read, else undefined. */
  async changed(): Promise<HostFacts | undefined> {
    const now = this.fingerprint();
    if (now === this.print || this.facts === undefined) return undefined;
    this.print = now;
    this.facts = undefined;
    return this.current();
  }
}

function hostFingerprint(): string {
  return `${os.release()}|${os.availableParallelism()}|${os.totalmem()}`;
}

/**
 * The probe, next to this file once built (dist/agent/host-facts-probe.js); run from the
 * sources (tests), the built one in dist/.
 */
function probePath(): string {
  const beside = fileURLToPath(new URL('./host-facts-probe.js', import.meta.url));
  return existsSync(beside)
    ? beside
    : fileURLToPath(new URL('../../dist/agent/host-facts-probe.js', import.meta.url));
}

async function readInChildProcess(): Promise<Omit<HostFacts, 'agentVersion'>> {
  const r = await run(process.execPath, [probePath()], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout) as Omit<HostFacts, 'agentVersion'>;
}
