// What this host is (OS, kernel, CPUs, memory, agent version), for `weft get nodes`. Read with
// systeminformation, imported only when the facts are first needed (at join or at the first
// stream), so that an agent that never asks does not load it; afterwards a cheap fingerprint
// from node:os (kernel release, CPU count, total memory) tells when they changed (a CPU or
// memory hot-plug, a kernel live-patch) and only then are they read again.
import * as os from 'node:os';
import type { HostFacts } from '../api/stats-messages.js';

/** Reads the facts; systeminformation by default. */
export type HostFactsReader = () => Promise<Omit<HostFacts, 'agentVersion'>>;

export class HostFactsSource {
  private facts: Promise<HostFacts> | undefined;
  private print = fingerprint();

  constructor(
    private readonly agentVersion: string,
    private readonly read: HostFactsReader = readWithSysteminformation,
  ) {}

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
    const now = fingerprint();
    if (now === this.print || this.facts === undefined) return undefined;
    this.print = now;
    this.facts = undefined;
    return this.current();
  }
}

function fingerprint(): string {
  return `${os.release()}|${os.availableParallelism()}|${os.totalmem()}`;
}

async function readWithSysteminformation(): Promise<Omit<HostFacts, 'agentVersion'>> {
  const si = await import('systeminformation');
  const [info, mem] = await Promise.all([si.osInfo(), si.mem()]);
  return {
    os: [info.distro, info.release, info.codename ? `(${info.codename})` : '']
      .filter((p) => p !== '')
      .join(' '),
    kernel: info.kernel,
    arch: info.arch,
    cpus: os.availableParallelism(),
    memoryBytes: mem.total,
  };
}
