// agent.yaml's telemetry.stats: the report interval, its default and its bounds.
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';

const parse = (stats: unknown) =>
  parseAgentConfig(JSON.stringify({ telemetry: { stats } }), 'agent.yaml').telemetry.stats;

describe('telemetry.stats', () => {
  it('reports every 10 s by default', () => {
    expect(parseAgentConfig('{}', 'agent.yaml').telemetry.stats).toEqual({ intervalMs: 10_000 });
    expect(parse({ intervalMs: 1_000 })).toEqual({ intervalMs: 1_000 });
  });

  it.each([
    [{ intervalMs: 500 }, 'intervalMs: must be at least 1000'],
    [{ intervalMs: 600_000 }, 'intervalMs: must be at most 300000'],
    [{ intervalMs: 1_500.5 }, 'intervalMs: must be a whole number'],
    [{ interval: 1_000 }, 'telemetry.stats: '],
  ])('refuses %j, naming the field', (stats, message) => {
    expect(() => parse(stats)).toThrow(message);
  });
});
