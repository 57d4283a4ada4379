// Running the OS tools weft drives (iptables-restore, ip, useradd, ...): one place that
// turns "binary not installed" and "not root" into weft errors that say what to do.
import { execa } from 'execa';
import { WeftError } from '../errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  /** Text written to the command's stdin. */
  input?: string;
  /** Return the result instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  /** Milliseconds before the command is killed. */
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Debian package that provides each tool weft runs, for "install it with" hints. */
const packageOf: Record<string, string> = {
  ip: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  'iptables-nft': 'iptables',
  'iptables-nft-save': 'iptables',
  'iptables-nft-restore': 'iptables',
  'iptables-legacy': 'iptables',
  'iptables-legacy-save': 'iptables',
  'iptables-legacy-restore': 'iptables',
  ip6tables: 'iptables',
  'ip6tables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  'ip6tables-nft-save': 'iptables',
  'ip6tables-nft-restore': 'iptables',
  'ip6tables-legacy-save': 'iptables',
  'ip6tables-legacy-restore': 'iptables',
  nsenter: 'util-linux',
  setpriv: 'util-linux',
  useradd: 'passwd',
  tcpdump: 'tcpdump',
  curl: 'curl',
};

export function installHint(tool: string): string {
  const pkg = packageOf[tool] ?? tool;
  return `install it with \`apt-get install ${pkg}\``;
}

/** Runs a command to completion; throws WEFT_E_MISSING_TOOL when the binary is absent. */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const result = await execa(cmd, args, {
    input: opts.input,
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    env: opts.env,
    stripFinalNewline: false,
  });
  const spawnError = (result as { code?: string }).code;
  if (spawnError === 'ENOENT') {
    throw new WeftError('WEFT_E_MISSING_TOOL', `\`${cmd}\` is not installed; ${installHint(cmd)}`);
  }
  if (result.timedOut) {
    throw new WeftError(
      'WEFT_E_INTERNAL',
      `\`${cmd} ${args.join(' ')}\` did not finish within ${opts.timeoutMs ?? 30_000} ms`,
    );
  }
  const out: RunResult = {
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    exitCode: result.exitCode ?? -1,
  };
  if (out.exitCode !== 0 && !opts.allowFailure) {
    const detail =
      out.stderr.trim().split('\n').slice(0, 3).join(' | ') || `exit code ${out.exitCode}`;
    throw new WeftError('WEFT_E_INTERNAL', `\`${cmd} ${args.join(' ')}\` failed: ${detail}`);
  }
  return out;
}

/** True when the binary can be found on PATH. */
export async function haveTool(cmd: string): Promise<boolean> {
  const r = await execa('sh', ['-c', `command -v "$1" >/dev/null`, 'sh', cmd], { reject: false });
  return r.exitCode === 0;
}

/** Throws WEFT_E_NOT_ROOT unless the process runs as root. */
export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new WeftError('WEFT_E_NOT_ROOT', `${what} needs root; run it with sudo or as root`);
  }
}
