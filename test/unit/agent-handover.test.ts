// An upgrade that replaces the agent's master (src/agent/workers/handover.ts, reload-check.ts):
// what the new image reads from the hand-over, what it refuses, and when the running master
// may exec into the code on disk at all.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import {
  encodeHandover,
  HANDOVER_ENV,
  HANDOVER_VERSION,
  type Handover,
  handoverFds,
  takeHandover,
  upgradeDecision,
} from '../../src/agent/workers/handover.js';
import {
  readHandoverCounts,
  writeHandoverCounts,
} from '../../src/agent/workers/handover-counts.js';
import { reloadRefusal } from '../../src/agent/workers/reload-check.js';

const handover: Handover = {
  version: HANDOVER_VERSION,
  slots: [
    { outbound: 3, inbound: 4, tunnel: 5 },
    { outbound: 9, inbound: 10, tunnel: 5 },
  ],
  passed: [['tunnel', [5]]],
  workers: [
    { pid: 100, generation: 2, state: 'serving', connections: 7, build: 'abc', stdout: 20 },
    { pid: 101, generation: 1, state: 'retiring', connections: 1, build: 'old' },
  ],
  nextGeneration: 3,
  execs: 1,
  from: { build: 'abc', version: '0.1.0' },
};

describe('the hand-over to the next master image', () => {
  it('comes back as it was sent, and is removed from the environment', () => {
    const env: Record<string, string | undefined> = { [HANDOVER_ENV]: encodeHandover(handover) };
    expect(takeHandover(env)).toEqual(handover);
    expect(env[HANDOVER_ENV]).toBeUndefined();
  });

  it('is absent on a plain start', () => {
    expect(takeHandover({})).toBeUndefined();
  });

  it.each([
    { what: 'not JSON', text: '{', error: /not JSON/ },
    {
      what: 'another version',
      text: JSON.stringify({ ...handover, version: HANDOVER_VERSION + 1 }),
      error: /version/,
    },
    {
      what: 'no socket slot',
      text: JSON.stringify({ ...handover, slots: [] }),
      error: /slots/,
    },
    {
      what: 'a negative fd',
      text: JSON.stringify({ ...handover, passed: [['tunnel', [-1]]] }),
      error: /passed/,
    },
  ])('is refused when $what, naming what is wrong', ({ text, error }) => {
    expect(() => takeHandover({ [HANDOVER_ENV]: text })).toThrow(error);
  });

  it('keeps every socket and log pipe it names open across the exec, each once', () => {
    expect(handoverFds(handover).sort((a, b) => a - b)).toEqual([3, 4, 5, 9, 10, 20]);
  });
});

describe('whether the master may exec into the code on disk', () => {
  const ok = {
    exitCode: 0,
    stdout: `${JSON.stringify({ build: 'new1', handover: [HANDOVER_VERSION] })}\n`,
    stderr: '',
  };
  it.each([
    { what: 'the new code checks out', refusal: undefined, check: ok, expected: /^exec new1$/ },
    {
      what: 'a config an upgrade cannot take',
      refusal: 'an upgrade in place cannot change capture',
      check: ok,
      expected: /^refuse an upgrade in place cannot change capture$/,
    },
    {
      what: 'the new code fails to start',
      refusal: undefined,
      check: { exitCode: 1, stdout: '', stderr: 'weft: WEFT_E_NATIVE_NOT_BUILT: rebuild it\n' },
      expected: /^refuse the new code does not start .*WEFT_E_NATIVE_NOT_BUILT/,
    },
    {
      what: 'the new code has a syntax error',
      refusal: undefined,
      check: {
        exitCode: 1,
        stdout: '',
        stderr:
          "file:///opt/weft/dist/agent/workers/master.js:280\nthis is not\n     ^^\n\nSyntaxError: Unexpected identifier 'is'\n    at compileSourceTextModule (node:internal)\n\nNode.js v26.12.1\n",
      },
      expected:
        /^refuse the new code does not start \(weft agent --check: SyntaxError: Unexpected identifier 'is'\)/,
    },
    {
      what: 'the check was killed (timeout)',
      refusal: undefined,
      check: { exitCode: null, stdout: '', stderr: '' },
      expected: /^refuse the new code does not start \(weft agent --check: exit null\)/,
    },
    {
      what: 'the new code reads another hand-over',
      refusal: undefined,
      check: { ...ok, stdout: JSON.stringify({ build: 'x', handover: [HANDOVER_VERSION + 1] }) },
      expected: /^refuse the new code does not take this master's hand-over.*systemctl restart/,
    },
    {
      what: 'the check printed nothing usable',
      refusal: undefined,
      check: { ...ok, stdout: 'hello' },
      expected: /^refuse weft agent --check printed no result/,
    },
  ])('$what', ({ refusal, check, expected }) => {
    const d = upgradeDecision(refusal, check);
    expect(d.kind === 'exec' ? `exec ${d.build}` : `refuse ${d.reason}`).toMatch(expected);
  });
});

describe('what an upgrade can change, beyond a reload', () => {
  const base = parseAgentConfig('hostname: h', 'agent.yaml');
  it.each([
    { change: 'workers: 3', reload: undefined, upgrade: undefined },
    { change: 'admin: { address: 127.0.0.2 }', reload: /admin/, upgrade: undefined },
    { change: 'metrics: { address: 127.0.0.2 }', reload: /metrics/, upgrade: undefined },
    { change: 'capture: { outboundPort: 16001 }', reload: /capture/, upgrade: /capture/ },
    { change: 'dataDir: /tmp/x', reload: /dataDir/, upgrade: /an upgrade in place.*dataDir/ },
  ])('$change', ({ change, reload, upgrade }) => {
    const next = parseAgentConfig(`hostname: h\n${change}`, 'agent.yaml');
    for (const [kind, expected] of [
      ['reload', reload],
      ['upgrade', upgrade],
    ] as const) {
      const why = reloadRefusal(base, next, kind);
      if (expected === undefined) expect(why, kind).toBeUndefined();
      else expect(why, kind).toMatch(expected);
    }
  });
});

describe('the counts handed to the next image', () => {
  const log = pino({ level: 'silent' });
  it('come back as written, and the file is gone once read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-handover-'));
    const counts = {
      readout: new Map([['k', { tcpOpened: 3, buckets: [1, 2] }]]),
      metrics: [[{ name: 'weft_tcp_open_total', type: 'counter', values: [{ value: 3 }] }]],
    } as never;
    const file = writeHandoverCounts(dir, counts, log);
    expect(file).toBeDefined();
    expect(readHandoverCounts(file, log)).toEqual(counts);
    expect(existsSync(file!)).toBe(false);
  });

  it('are only lost, never fatal, when they cannot be written or read', () => {
    expect(writeHandoverCounts('/nonexistent/dir', { readout: new Map(), metrics: [] }, log)).toBe(
      undefined,
    );
    expect(readHandoverCounts('/nonexistent/file', log)).toBeUndefined();
    expect(readHandoverCounts(undefined, log)).toBeUndefined();
  });
});
