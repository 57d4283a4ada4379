// Running the OS tools weft drives (iptables-restore, ip, useradd, ...): one place that
// turns "binary not installed" and "not root" into weft errors that say what to do.
import { spawn } from 'node:child_process';
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
  etcd: 'etcd-server',
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
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const result = await spawnToEnd(cmd, args, opts.input, timeoutMs, opts.env);
  if (result.spawnError === 'ENOENT') {
    throw new WeftError('WEFT_E_MISSING_TOOL', `\`${cmd}\` is not installed; ${installHint(cmd)}`);
  }
  if (result.timedOut) {
    throw new WeftError(
      'WEFT_E_INTERNAL',
      `\`${cmd} ${args.join(' ')}\` did not finish within ${timeoutMs} ms`,
    );
  }
  const out: RunResult = {
    stdout: result.stdout,
    stderr: result.stderr,
    exitCode: result.exitCode,
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
  const r = await spawnToEnd('sh', ['-c', `command -v "$1" >/dev/null`, 'sh', cmd]);
  return r.exitCode === 0;
}

interface Ended {
  stdout: string;
  stderr: string;
  /** -1 when the process could not start or was killed by a signal. */
  exitCode: number;
  timedOut: boolean;
  /** The errno code when the process could not be started (ENOENT: no such binary). */
  spawnError?: string;
}

/**
 * node:child_process, not execa: the agent runs `ip` at start (its reply-path check), and
 * execa's module graph (about 100 modules) cost a resident agent several MiB of RSS for a
 * spawn Node does itself. The environment extends the process's own, as execa's did; without
 * input, stdin is /dev/null, so a tool that reads it sees its end at once instead of hanging.
 */
function spawnToEnd(
  cmd: string,
  args: readonly string[],
  input?: string,
  timeoutMs?: number,
  env?: Record<string, string>,
): Promise<Ended> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: env ? { ...process.env, ...env } : process.env,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    let spawnError: string | undefined;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
          }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => stdout.push(b));
    child.stderr?.on('data', (b: Buffer) => stderr.push(b));
    // A tool that exits without reading all of its input breaks the pipe: its exit status says
    // what happened, not the EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = err.code ?? 'unknown';
    });
    // 'close' comes after 'exit' and after stdout and stderr have ended (or after 'error'
    // when the process never started).
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        exitCode: code ?? -1,
        timedOut,
        spawnError,
      });
    });
  });
}

/** Throws WEFT_E_NOT_ROOT unless the process runs as root. */
export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new WeftError('WEFT_E_NOT_ROOT', `${what} needs root; run it with sudo or as root`);
  }
}
