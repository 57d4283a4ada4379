// The control plane's V8 flags (src/controlplane/node-flags.ts) are on node's command line
// wherever weft starts it: its systemd unit (the lab and the bench import the list itself).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONTROL_PLANE_NODE_FLAGS } from '../../src/controlplane/node-flags.js';

const UNIT = new URL('../../scripts/systemd/weft-controlplane.service', import.meta.url);

describe('the control plane node flags', () => {
  it('are what its systemd unit gives node, before the weft script', () => {
    const execStart = readFileSync(UNIT, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('ExecStart='));
    const argv = execStart!.slice('ExecStart='.length).split(/\s+/);
    expect(argv[0]).toBe('/opt/weft/runtime/node/bin/node');
    expect(argv.slice(1, argv.indexOf('/opt/weft/bin/weft'))).toEqual([
      ...CONTROL_PLANE_NODE_FLAGS,
    ]);
  });

  it('are taken by the pinned runtime and bound the young generation under churn', () => {
    // Short-lived objects by the hundred thousand, as a burst of joins makes: without the flag
    // V8 grows its new space to 64 MiB here (two 16 MiB semi-spaces and their successor).
    const churn = `let keep = [];
      for (let i = 0; i < 3e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 2e5) keep = []; }
      const s = require('node:v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
      process.stdout.write(String(s.space_size));`;
    const r = spawnSync(process.execPath, [...CONTROL_PLANE_NODE_FLAGS, '-e', churn], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(Number(r.stdout)).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});
