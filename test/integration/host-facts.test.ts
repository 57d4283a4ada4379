// The agent's host facts read for real (src/agent/host-facts.ts): this host's os-release name
// and the numbers node:os reports for it.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import { HostFactsSource, osName } from '../../src/agent/host-facts.js';

describe('host facts', () => {
  it("this host's OS, kernel, CPUs and memory, and the agent version", async () => {
    const facts = await new HostFactsSource('weft-agent/test').current();
    expect(facts).toEqual({
      os: osName(readFileSync('/etc/os-release', 'utf8')),
      kernel: os.release(),
      arch: os.arch(),
      cpus: os.availableParallelism(),
      memoryBytes: os.totalmem(),
      agentVersion: 'weft-agent/test',
    });
  });
});
