// Which code this process runs: the build id scripts/install.sh writes beside dist/ (a hash of
// the installed code), read once at start. The master and each worker report theirs, so an
// upgrade can be seen to have taken (`weft status`, install.sh's wait). "dev" in a checkout.
import { readFileSync } from 'node:fs';

function readBuildId(): string {
  try {
    const id = readFileSync(new URL('../../build-id', import.meta.url), 'utf8').trim();
    return /^[0-9a-z.-]{1,64}$/.test(id) ? id : 'unknown';
  } catch {
    return 'dev';
  }
}

export const BUILD_ID = readBuildId();
