// `weft agent` imports only what the agent runs: the other verbs' modules (control plane, lab,
// resource CLI) cost the resident daemon memory for nothing (issue #15 item 2).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PINNED_NODE, ROOT } from '../helpers/node-runtime.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'weft-cli-modules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A module hook that writes every module the process loads to $WEFT_TEST_MODULES, one a line.
const hook = join(dir, 'hook.mjs');
writeFileSync(
  hook,
  `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ load(url, ctx, next) { appendFileSync(process.env.WEFT_TEST_MODULES, url + '\\n'); return next(url, ctx); } });
`,
);

/** Runs `weft ARGS` on the pinned runtime; returns its stdout and the modules it loaded. */
async function weft(args: string[]): Promise<{ stdout: string; modules: string[] }> {
  const list = join(dir, `modules-${args.join('-')}.txt`);
  writeFileSync(list, '');
  const { stdout } = await run(PINNED_NODE, ['--import', hook, join(ROOT, 'bin/weft'), ...args], {
    env: { ...process.env, WEFT_TEST_MODULES: list },
  });
  const modules = readFileSync(list, 'utf8').split('\n').filter(Boolean);
  return { stdout, modules: modules.map((m) => m.replace(`file://${ROOT}`, '')) };
}

describe('weft agent loads only the agent', () => {
  it('imports neither the control plane, the lab nor the other verbs', async () => {
    const { stdout, modules } = await weft(['agent', '--help']);
    expect(stdout).toContain('--config <file>');
    // Sentinel: the hook saw the agent's own modules, so an empty list cannot pass.
    expect(modules).toContain('dist/cli/commands/agent.js');
    const foreign = modules.filter(
      (m) =>
        m.startsWith('dist/controlplane/') ||
        m.startsWith('dist/lab/') ||
        (m.startsWith('dist/cli/commands/') && m !== 'dist/cli/commands/agent.js') ||
        m.includes('/node_modules/etcd3/') ||
        // the agent runs `ip` at start through node:child_process (src/sys/run.ts)
        m.includes('/node_modules/execa/'),
    );
    expect(foreign).toEqual([]);
  });

  it('still lists every verb in `weft --help`', async () => {
    const { stdout } = await weft(['--help']);
    for (const verb of [
      'agent',
      'status',
      'redirect',
      'leave',
      'controlplane',
      'token',
      'apply',
      'get',
      'delete',
      'node',
      'lab',
    ])
      expect(stdout).toMatch(new RegExp(`^\\s+${verb}\\b`, 'm'));
  });
});
