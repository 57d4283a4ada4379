// The daemon's side of systemd: sd_notify messages (READY=1, STATUS=, STOPPING=1, WATCHDOG=1)
// and listening sockets passed by a socket unit (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
// Outside systemd every function here is a no-op, so the same code runs in tests and by hand.
import { defaultAddonPath, loadAddon, type NativeAddon } from '../native/load-addon.js';

/** sd_listen_fds(3): passed descriptors start at 3 (after stdin, stdout, stderr). */
const SD_LISTEN_FDS_START = 3;

type Env = Record<string, string | undefined>;

/**
 * The sockets systemd passed to this process, by FileDescriptorName= (unnamed ones are called
 * "unknown", as sd_listen_fds_with_names names them), each name's in the order of the unit's
 * Listen*= lines. Empty when none were passed or they were
 * meant for another process (LISTEN_PID differs, e.g. inherited by a child). With `unset`, the
 * variables are removed from `env` so that children do not take the sockets as theirs.
 */
export function listenFds(
  env: Env = process.env,
  pid = process.pid,
  unset = true,
): Map<string, number[]> {
  const fds = new Map<string, number[]>();
  const forPid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  if (unset) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (forPid !== pid || !Number.isInteger(count) || count <= 0) return fds;
  for (let i = 0; i < count; i += 1) {
    const name = names[i] || 'unknown';
    fds.set(name, [...(fds.get(name) ?? []), SD_LISTEN_FDS_START + i]);
  }
  return fds;
}

let addon: NativeAddon | null | undefined;

/**
 * Sends one sd_notify message ("READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1").
 * Returns false when not run by systemd ($NOTIFY_SOCKET unset) or the addon cannot send it.
 * Through the native addon because Node has no unix datagram sockets, and the systemd-notify
 * binary is racy: systemd drops its message when the short-lived sender exits before systemd
 * has looked up its cgroup, and it needs NotifyAccess=all.
 */
export function sdNotify(message: string): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  if (addon === undefined) {
    try {
      addon = loadAddon(defaultAddonPath);
    } catch {
      addon = null;
    }
  }
  if (!addon?.sdNotify) return false;
  try {
    return addon.sdNotify(message);
  } catch {
    return false;
  }
}

/** STATUS= takes one line: newlines would end the assignment. */
export function sdStatus(text: string): boolean {
  return sdNotify(`STATUS=${text.replace(/\s*\n\s*/g, ' ')}`);
}

/**
 * With WatchdogSec= set (WATCHDOG_USEC for this pid), sends WATCHDOG=1 at half the interval
 * from the event loop, so a wedged loop gets the service killed. Returns a stop function.
 */
export function startWatchdog(env: Env = process.env, pid = process.pid): () => void {
  const usec = Number(env.WATCHDOG_USEC);
  const forPid = env.WATCHDOG_PID === undefined ? pid : Number(env.WATCHDOG_PID);
  if (!Number.isFinite(usec) || usec <= 0 || forPid !== pid) return () => {};
  const timer = setInterval(() => sdNotify('WATCHDOG=1'), Math.max(1, usec / 2000));
  timer.unref();
  return () => clearInterval(timer);
}

export interface StatusNotifier {
  /** The line systemd should show now; sent at once or at the end of the current interval. */
  update(text: string): void;
  /** Drops a pending update (the caller sends its own final STATUS=). */
  stop(): void;
}

/**
 * STATUS= that stays current without a message per snapshot: the first update goes at once,
 * later ones at most one per `minIntervalMs`, and the last one of a burst is sent when the
 * interval ends, so `systemctl status` never stays behind. Repeats of the line sent are dropped.
 */
export function statusNotifier(
  send: (text: string) => unknown = sdStatus,
  minIntervalMs = 1_000,
  now: () => number = Date.now,
): StatusNotifier {
  let sent: string | undefined;
  let sentAt = Number.NEGATIVE_INFINITY;
  let pending: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (pending === undefined) return;
    const text = pending;
    pending = undefined;
    if (text === sent) return;
    sent = text;
    sentAt = now();
    send(text);
  };
  return {
    update(text) {
      pending = text;
      if (timer !== undefined) return;
      const wait = sentAt + minIntervalMs - now();
      if (wait <= 0) flush();
      else {
        timer = setTimeout(flush, wait);
        timer.unref();
      }
    },
    stop() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      pending = undefined;
    },
  };
}
