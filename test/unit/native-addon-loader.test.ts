// Loading the native addon: a missing or unloadable build says how to build it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { addon, defaultAddonPath, loadAddon } from '../../src/native/addon.js';

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('loadAddon', () => {
  it('tells the user to build the addon when the file does not exist', () => {
    const path = join(tmpdir(), 'weft-no-such-dir', 'weft_native.node');
    const err = thrownBy(() => loadAddon(path));
    expect(isWeftError(err, 'WEFT_E_NATIVE_NOT_BUILT')).toBe(true);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('npm run build:native');
  });

  it('tells the user to rebuild when the file is not a loadable addon', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-native-'));
    try {
      const path = join(dir, 'weft_native.node');
      writeFileSync(path, 'not an ELF object');
      const err = thrownBy(() => loadAddon(path));
      expect(isWeftError(err, 'WEFT_E_NATIVE_NOT_BUILT')).toBe(true);
      expect((err as Error).message).toContain('could not be loaded');
      expect((err as Error).message).toContain('npm run build:native');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads the real build, which exports every function weft calls', () => {
    expect(defaultAddonPath).toMatch(/native\/build\/Release\/weft_native\.node$/);
    expect(typeof addon.originalDestination).toBe('function');
    expect(typeof addon.socketOwner).toBe('function');
    expect(typeof addon.transparentListener).toBe('function');
    expect(typeof addon.tcpListeners).toBe('function');
    expect(typeof addon.transparentConnect).toBe('function');
    expect(typeof addon.cancelConnect).toBe('function');
  });
});
