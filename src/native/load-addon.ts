// Loads the compiled native addon from a path and checks it has what weft calls; a missing
// or stale build becomes WEFT_E_NATIVE_NOT_BUILT with the command that fixes it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';

/** What the addon's originalDestination returns; `redirected` is false when no NAT happened. */
export interface RawOriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
  redirected: boolean;
}

export interface RawSocketOwner {
  uid: number;
  inode: number;
  cgroupId?: bigint;
}

/** A TCP socket in LISTEN state, as tcpListeners reports it. */
export interface RawTcpListener {
  address: string;
  port: number;
  family: 4 | 6;
  /** IPV6_V6ONLY: an IPv6 wildcard listener that takes no IPv4 connections. */
  v6only: boolean;
}

/** The functions native/src/addon.cc exports. They throw NativeErrnoError on kernel errors. */
export interface NativeAddon {
  originalDestination(fd: number): RawOriginalDestination;
  transparentListener(
    host: string,
    port: number,
    backlog: number,
    transparent?: boolean,
    reusePort?: boolean,
  ): number;
  socketOwner(
    localAddress: string,
    localPort: number,
    remoteAddress: string,
    remotePort: number,
  ): RawSocketOwner | undefined;
  /** Every TCP socket listening on `port` in this network namespace, both families. */
  tcpListeners(port: number): RawTcpListener[];
  /** Sends a sd_notify message; false when $NOTIFY_SOCKET is unset. Absent in older builds. */
  sdNotify?(message: string): boolean;
  /**
   * Starts a connect from `source` (IP_TRANSPARENT, SO_MARK = mark, bound to source:0 but never
   * to avoidPort) to target:port and returns its fd. `callback(null)` once connected (the fd is
   * the caller's), `callback(error)` when it failed (the fd is closed).
   */
  transparentConnect(
    source: string,
    target: string,
    port: number,
    mark: number,
    avoidPort: number,
    callback: (err: Error | null) => void,
  ): number;
  /** Stops a pending transparentConnect and closes its fd (no callback); false if not pending. */
  cancelConnect(fd: number): boolean;
  /** malloc_trim(0): true when the C heap gave pages back to the kernel. Absent in older builds. */
  mallocTrim?(): boolean;
  /** Sets or clears FD_CLOEXEC: a cleared fd stays open across the master's re-exec. */
  setCloexec(fd: number, on: boolean): void;
  /** waitpid(pid, WNOHANG): undefined while it runs, its end once reaped, `gone` if not a child. */
  reapChild(pid: number): { code?: number; signal?: number; gone?: true } | undefined;
}

/** native/build/Release/weft_native.node, the same from src/native (tests) and dist/native. */
export const defaultAddonPath = fileURLToPath(
  new URL('../../native/build/Release/weft_native.node', import.meta.url),
);

const buildHint = 'run `npm run build:native` (or scripts/bootstrap)';
const addonFunctions = [
  'originalDestination',
  'transparentListener',
  'socketOwner',
  'tcpListeners',
  'transparentConnect',
  'cancelConnect',
  'setCloexec',
  'reapChild',
] as const;

export function loadAddon(path: string): NativeAddon {
  if (!existsSync(path)) {
    throw new WeftError(
      'WEFT_E_NATIVE_NOT_BUILT',
      `the native addon ${path} does not exist: it has not been built; ${buildHint}`,
    );
  }
  let loaded: Partial<NativeAddon>;
  try {
    loaded = createRequire(import.meta.url)(path) as Partial<NativeAddon>;
  } catch (err) {
    // Typically built for another Node version (NODE_MODULE_VERSION mismatch).
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new WeftError(
      'WEFT_E_NATIVE_NOT_BUILT',
      `the native addon ${path} could not be loaded (${reason}); rebuild it: ${buildHint}`,
      { cause: err },
    );
  }
  const missing = addonFunctions.filter((name) => typeof loaded[name] !== 'function');
  if (missing.length > 0) {
    throw new WeftError(
      'WEFT_E_NATIVE_NOT_BUILT',
      `the native addon ${path} is out of date (it lacks ${missing.join(', ')}); ${buildHint}`,
    );
  }
  return loaded as NativeAddon;
}
