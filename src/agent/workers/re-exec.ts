// The master replacing itself on an upgrade (SIGUSR2): checks that the code on disk starts and
// reads this master's hand-over (`weft agent --check`, run with the new code), then execs into
// it with the same pid (systemd keeps tracking it: Type=notify, NotifyAccess=main), the
// listening sockets and the workers' log pipes kept open across the exec (handover.ts).
import { execFile } from 'node:child_process';
import { setCloexec } from '../../native/process-ops.js';
import { flushLogs, type Logger } from '../../sys/logger.js';
import {
  type CheckResult,
  encodeHandover,
  HANDOVER_ENV,
  type Handover,
  handoverFds,
} from './handover.js';

/** process.execve (Node >= 22.15; the pinned runtime has it, @types/node not yet). */
interface WithExecve {
  execve(file: string, args: string[], env: Record<string, string>): never;
}

/** Long enough for a cold start of the new code on a loaded host. */
const CHECK_TIMEOUT_MS = 60_000;

/** This process's own command line: the runtime, its flags, the script and its arguments. */
function ownArgv(): string[] {
  return [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}

/** The environment the next image (and the check) starts with: systemd's own variables for
 * this pid stay (NOTIFY_SOCKET, WATCHDOG_*), those meant for workers do not. */
function nextEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  delete env[HANDOVER_ENV];
  return { ...env, ...extra };
}

/** `weft agent --check` with the code on disk now and this master's config file. */
export function checkNewCode(configFile: string | undefined): Promise<CheckResult> {
  const args = [
    ...process.execArgv,
    process.argv[1]!,
    'agent',
    '--check',
    ...(configFile ? ['--config', configFile] : []),
  ];
  // Not systemd's: the check must not notify as if it were the service.
  const env = nextEnv({});
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, timeout: CHECK_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ exitCode: code, stdout, stderr: stderr || (err?.message ?? '') });
    });
  });
}

/**
 * Execs into the code on disk with `handover`. Returns only when the exec failed (the error),
 * with every fd closed-on-exec again except systemd's own (`passed`), so the running master
 * goes on as before.
 */
export async function execInto(handover: Handover, log: Logger): Promise<Error> {
  const passed = new Set(handover.passed.flatMap(([, fds]) => fds));
  const fds = handoverFds(handover);
  for (const fd of fds) setCloexec(fd, false);
  await flushLogs(log);
  const [runtime, ...args] = ownArgv();
  try {
    (process as unknown as WithExecve).execve(
      runtime!,
      [runtime!, ...args],
      nextEnv({ [HANDOVER_ENV]: encodeHandover(handover) }),
    );
  } catch (err) {
    for (const fd of fds) if (!passed.has(fd)) setCloexec(fd, true);
    return err instanceof Error ? err : new Error(String(err));
  }
  return new Error('process.execve returned');
}
