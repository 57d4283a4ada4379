// Tests that need root or OS tools call this first: a missing prerequisite fails the
// test file loudly with what to do; nothing is ever skipped silently.
import { execFileSync } from 'node:child_process';

export function requireRootAndTools(tools: readonly string[]): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'these tests need root (network namespaces, iptables): run the test command as root',
    );
  }
  const missing = tools.filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v "$1"`, 'sh', tool], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `these tests need ${missing.join(', ')}: run scripts/bootstrap to install them`,
    );
  }
}
