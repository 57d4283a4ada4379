// The Debian tools the benchmark drives, installed with apt-get when missing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const TOOLS = [
  { bin: 'wrk', pkg: 'wrk' },
  { bin: 'h2load', pkg: 'nghttp2-client' },
  { bin: 'iperf3', pkg: 'iperf3' },
  { bin: 'haproxy', pkg: 'haproxy' },
  { bin: 'openssl', pkg: 'openssl' },
  { bin: 'taskset', pkg: 'util-linux' },
  { bin: 'curl', pkg: 'curl' },
];

const onPath = (bin) =>
  ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) =>
    existsSync(`${d}/${bin}`),
  );

export function ensureTools(log) {
  const missing = TOOLS.filter((t) => !onPath(t.bin)).map((t) => t.pkg);
  if (missing.length === 0) return;
  log(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env,
  });
  // The haproxy package starts a system-wide service: the benchmark runs its own instances.
  if (missing.includes('haproxy')) {
    try {
      execFileSync('systemctl', ['disable', '--now', 'haproxy'], { stdio: 'ignore' });
    } catch {}
  }
}
