// Running OS tools (src/sys/run.ts): what iptables-restore, ip and the lab rely on, on real
// processes: input on stdin, output kept whole, failures and missing tools as weft errors.
import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { haveTool, run } from '../../src/sys/run.js';

describe('run', () => {
  it('feeds the input to stdin and keeps the output whole, final newline included', async () => {
    const r = await run('cat', [], { input: 'a\nb\n' });
    expect(r).toEqual({ stdout: 'a\nb\n', stderr: '', exitCode: 0 });
  });

  it('gives a tool that reads stdin without input its end at once', async () => {
    const r = await run('cat', []);
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('extends the environment with the given variables', async () => {
    const r = await run(
      'sh',
      ['-c', 'printf "%s" "$WEFT_RUN_TEST"; test -n "$PATH" && printf " path"'],
      {
        env: { WEFT_RUN_TEST: 'set' },
      },
    );
    expect(r.stdout).toBe('set path');
  });

  it('throws on a non-zero exit with the first lines of stderr', async () => {
    const err = await run('sh', ['-c', 'echo one >&2; echo two >&2; exit 3']).catch((e) => e);
    expect(isWeftError(err, 'WEFT_E_INTERNAL')).toBe(true);
    expect(err.message).toContain('failed: one | two');
  });

  it('returns a non-zero exit when failure is allowed', async () => {
    const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 4'], { allowFailure: true });
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 4 });
  });

  it('names a missing tool and how to install it', async () => {
    const err = await run('weft-no-such-tool', []).catch((e) => e);
    expect(isWeftError(err, 'WEFT_E_MISSING_TOOL')).toBe(true);
    expect(err.message).toContain('`weft-no-such-tool` is not installed');
  });

  it('kills a command that outlasts its timeout', async () => {
    const err = await run('sleep', ['30'], { timeoutMs: 200 }).catch((e) => e);
    expect(isWeftError(err, 'WEFT_E_INTERNAL')).toBe(true);
    expect(err.message).toContain('did not finish within 200 ms');
  });

  it('survives a tool that exits without reading its input', async () => {
    const r = await run('true', [], { input: 'x'.repeat(1 << 20) });
    expect(r.exitCode).toBe(0);
  });
});

describe('haveTool', () => {
  it('finds a tool on PATH and not a missing one', async () => {
    expect(await haveTool('sh')).toBe(true);
    expect(await haveTool('weft-no-such-tool')).toBe(false);
  });
});
