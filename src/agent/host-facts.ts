// What this host is (OS, kernel, CPUs, memory, agent version), for `weft get nodes`. Read when
// first needed (at join or at the first stream) from /etc/os-release and node:os; afterwards a
// cheap fingerprint (kernel release, CPU count, total memory), checked at each stats report,
// tells when they changed (a CPU or memory hot-plug) and only then are they read again.
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import type { HostFacts } from '../api/stats-messages.js';

/** Reads the facts; /etc/os-release and node:os by default. */
export type HostFactsReader = () => Promise<Omit<HostFacts, 'agentVersion'>>;

export class HostFactsSource {
  private facts: Promise<HostFacts> | undefined;
  private print: string;

  constructor(
    private readonly agentVersion: string,
    private readonly read: HostFactsReader = readHostFacts,
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

/** "Debian GNU/Linux 12 (bookworm)": os-release's PRETTY_NAME (NAME VERSION without one). */
export function osName(osRelease: string): string {
  const fields = new Map<string, string>();
  for (const line of osRelease.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1] as string, (m[2] as string).replace(/^(["'])(.*)\1$/, '$2'));
  }
  const pretty = fields.get('PRETTY_NAME');
  if (pretty) return pretty;
  return [fields.get('NAME') ?? os.type(), fields.get('VERSION') ?? ''].join(' ').trim();
}

/**
 * In this process, from /etc/os-release and node:os: no other program runs. (systeminformation's
 * osInfo runs `hostname -f`, a DNS lookup that hangs on an offline host and outlived a stopping
 * agent: userdel then failed in uninstall.sh.)
 */
async function readHostFacts(): Promise<Omit<HostFacts, 'agentVersion'>> {
  let release = '';
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    release = await readFile(file, 'utf8').catch(() => '');
    if (release !== '') break;
  }
  return {
    os: osName(release),
    kernel: os.release(),
    arch: os.arch(),
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
  };
}
