// A real headless Chromium (Debian's chromium package) driven by playwright-core, for tests
// of the web dashboard. A missing browser fails the test file with what to install; screenshots
// go to test-artifacts/ (kept after the run, ignored by git).
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

/** The browser itself: /usr/bin/chromium is Debian's wrapper script around it. */
const CHROMIUM = '/usr/lib/chromium/chromium';

export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/**
 * Chromium, in the root network namespace or in a lab host's (`netns`): playwright talks to it
 * over pipes, so only the pages it loads go through that host's network.
 */
export async function launchChromium(options: { netns?: string } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: the dashboard tests need Debian's chromium: run scripts/bootstrap`,
    );
  }
  let executablePath = CHROMIUM;
  if (options.netns !== undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
    executablePath = join(dir, 'chromium');
    writeFileSync(
      executablePath,
      `#!/bin/sh\nexec ip netns exec ${options.netns} ${CHROMIUM} "$@"\n`,
      { mode: 0o755 },
    );
  }
  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath, args: ['--no-sandbox'], headless: true });
}

/** Where a test's screenshot goes: test-artifacts/<group>/<name>.png. */
export function artifactPath(group: string, name: string): string {
  const dir = join(ARTIFACTS_DIR, group);
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.png`);
}
