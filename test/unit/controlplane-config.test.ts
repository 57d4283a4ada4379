// Durations as written in YAML, and the control plane config: defaults, and errors that name
// the file and the field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/api/duration.js';
import { loadControlPlaneConfig, parseControlPlaneConfig } from '../../src/controlplane/config.js';

describe('durations', () => {
  const table: Array<[string, number | undefined]> = [
    ['500ms', 500],
    ['90s', 90_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    [' 2s ', 2_000],
    ['0s', 0],
    ['15', undefined],
    ['15 s', undefined],
    ['s', undefined],
    ['-1s', undefined],
    ['1y', undefined],
    ['', undefined],
  ];
  for (const [text, ms] of table) {
    it(`"${text}" -> ${ms}`, () => expect(parseDuration(text)).toBe(ms));
  }

  it('formats back', () => {
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(250)).toBe('250ms');
  });
});

describe('control plane config', () => {
  it('has the documented defaults', () => {
    const c = parseControlPlaneConfig({}, 'cp.yaml');
    expect(c).toMatchObject({
      trustDomain: 'weft.local',
      dataDir: '/var/lib/weft-cp',
      grpcPort: 15012,
      httpPort: 15014,
      workloadCertTtl: 86_400_000,
      nodeCertTtl: 86_400_000,
      workloadStaleAfter: 20_000,
      workloadRemoveAfter: 300_000,
      tokenTtl: 86_400_000,
      syncCoalesce: 50,
    });
    expect(c.ca).toBeUndefined();
  });

  it('reads durations', () => {
    const c = parseControlPlaneConfig(
      { workloadCertTtl: '1h', workloadStaleAfter: '500ms', workloadRemoveAfter: '2s' },
      'cp.yaml',
    );
    expect([c.workloadCertTtl, c.workloadStaleAfter, c.workloadRemoveAfter]).toEqual([
      3_600_000, 500, 2_000,
    ]);
  });

  const errors: Array<[string, unknown, string]> = [
    [
      'a bare number as duration',
      { nodeCertTtl: 24 },
      'cp.yaml: nodeCertTtl: must be a duration like "500ms", "90s", "5m" or "24h" (with its unit)',
    ],
    [
      'a bad duration',
      { tokenTtl: 'one day' },
      'cp.yaml: tokenTtl: must be a duration like "500ms", "90s", "5m" or "24h", greater than zero',
    ],
    ['an unknown field', { grpcport: 1 }, 'cp.yaml: grpcport: unknown field'],
    ['a bad port', { httpPort: 70000 }, 'cp.yaml: httpPort: must be 0-65535'],
    [
      'a bad trust domain',
      { trustDomain: 'Weft Local' },
      'cp.yaml: trustDomain: must be a trust domain: lowercase letters, digits, ".", "-", "_"',
    ],
    ['ca without keyFile', { ca: { certFile: '/x' } }, 'cp.yaml: ca.keyFile: required'],
    [
      'removal before stale',
      { workloadStaleAfter: '1m', workloadRemoveAfter: '30s' },
      'cp.yaml: workloadRemoveAfter: must be longer than workloadStaleAfter',
    ],
    [
      'workloadUnhealthyAfter, whose meaning is gone, saying what replaced it',
      { workloadUnhealthyAfter: '15s' },
      "cp.yaml: workloadUnhealthyAfter: no longer supported: a node's silence no longer marks its workloads unhealthy",
    ],
  ];
  for (const [name, input, message] of errors) {
    it(`refuses ${name}`, () =>
      expect(() => parseControlPlaneConfig(input, 'cp.yaml')).toThrow(message));
  }

  it('loads a YAML file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cp-config-'));
    const file = join(dir, 'cp.yaml');
    try {
      writeFileSync(file, 'trustDomain: example.org\nworkloadCertTtl: 12h\n');
      expect(loadControlPlaneConfig(file)).toMatchObject({
        trustDomain: 'example.org',
        workloadCertTtl: 43_200_000,
      });
      writeFileSync(file, 'grpcPort: [\n');
      expect(() => loadControlPlaneConfig(file)).toThrow(`${file}: not valid YAML`);
      expect(() => loadControlPlaneConfig(join(dir, 'missing.yaml'))).toThrow('cannot read config');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
