// The agent's host facts read for real (src/agent/host-facts.ts): systeminformation in a child
// process, with the numbers node:os reports for this very host.
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import { HostFactsSource } from '../../src/agent/host-facts.js';

describe('host facts', () => {
  it("this host's OS, kernel, CPUs and memory, and the agent version", async () => {
    const facts = await new HostFactsSource('weft-agent/test').current();
    expect(facts).toEqual({
      os: expect.stringMatching(/\S/),
      kernel: os.release(),
      arch: os.arch(),
      cpus: os.availableParallelism(),
      memoryBytes: os.totalmem(),
      agentVersion: 'weft-agent/test',
    });
  });
});
