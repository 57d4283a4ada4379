// Copies a checkout's production dependencies (lockfile entries without "dev": true) into an
// install tree, so install.sh needs neither npm nor the network on the target host.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [source, target] = process.argv.slice(2);
if (!source || !target) {
  console.error('usage: copy-prod-deps.mjs SOURCE_CHECKOUT TARGET_DIR');
  process.exit(2);
}
const lock = JSON.parse(readFileSync(join(source, 'package-lock.json'), 'utf8'));
let copied = 0;
for (const [path, entry] of Object.entries(lock.packages ?? {})) {
  // "" is the root package; optional platform packages may be absent on this machine.
  if (path === '' || !path.startsWith('node_modules/') || entry.dev || entry.link) continue;
  const from = join(source, path);
  if (!existsSync(from)) {
    if (entry.optional) continue;
    console.error(`copy-prod-deps: ${from} is missing: run npm ci in ${source}`);
    process.exit(1);
  }
  // Nested node_modules are separate lockfile entries: skip them here, they come on their own.
  cpSync(from, join(target, path), {
    recursive: true,
    filter: (p) => p === from || !p.slice(from.length).includes('/node_modules/'),
  });
  copied += 1;
}
console.log(`install.sh: copied ${copied} production packages`);
